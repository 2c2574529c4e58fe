import { defineCommand, flagOption } from "../cli/spec.ts";
import { describeGeneration } from "../core/store/generation.ts";
import { summariseProjects } from "../core/projects/project_summary.ts";
import { padVisible } from "../ui/color.ts";

/** `virtdev list [--json]`: the projects with port, status and generation. */
export const listCommand = defineCommand("list", {
  brief: `List projects with port, status and generation.`,
  options: {
    json: flagOption(["--json"], `Print a JSON array instead of a table.`),
  },
  async run({ json }, { store, ui, config }) {
    const { base, projects } = await summariseProjects(store, config);
    const legacy = projects.filter((p) => p.legacyName).map((p) => p.name);
    if (legacy.length > 0) {
      ui.warn(
        `${legacy.join(", ")}: ${
          legacy.length === 1 ? "a name" : "names"
        } the original virtdev allowed and this one does not (over 64 characters, a leading '-', or 'base'). Such a project can be stopped and destroyed, but not started: rename it with 'virtdev move -- NAME NEW-NAME'.`,
      );
    }
    const elsewhere = projects.filter((p) => p.startedElsewhere).map((p) => p.name);
    if (elsewhere.length > 0) {
      ui.warn(
        `${
          elsewhere.join(", ")
        }: running in a QEMU virtdev did not start (the original virtdev, or by hand); 'virtdev stop' ends it.`,
      );
    }
    if (json) {
      ui.result(JSON.stringify(projects.map((p) => ({ ...p, baseGeneration: describeGeneration(base) }))));
      return;
    }
    if (projects.length === 0) {
      ui.info("No projects found. Create one with: virtdev create <name>");
      return;
    }
    const c = ui.stdoutColors;
    const width = Math.max(7, ...projects.map((p) => p.name.length));
    const shown = projects.map((p) => p.startedElsewhere ? `${p.status} (started elsewhere)` : p.status);
    const statusWidth = Math.max(8, ...shown.map((text) => text.length));
    ui.result(`${"PROJECT".padEnd(width)}  ${"PORT".padEnd(5)}  ${"STATUS".padEnd(statusWidth)}  GENERATION`);
    projects.forEach((p, i) => {
      const status = p.startedElsewhere
        ? c.yellow(shown[i])
        : p.status === "running"
        ? c.green(p.status)
        : p.status === "stopped"
        ? c.red(p.status)
        : c.yellow(p.status);
      const generation = p.detached
        ? c.yellow(p.generation)
        : p.stale
        ? c.red(p.keptBase ? `${p.generation} (base kept)` : p.generation)
        : p.generation;
      ui.result(
        `${p.name.padEnd(width)}  ${String(p.port ?? "-").padEnd(5)}  ${
          padVisible(status, statusWidth)
        }  ${generation}`,
      );
    });
    if (base.kind !== "missing") ui.info(`Base generation: ${describeGeneration(base)}`);
    if (projects.some((p) => p.stale && p.keptBase)) {
      ui.info("A stale project with a kept base boots with 'virtdev start --stale' (to back it up or recreate it).");
    }
  },
});
