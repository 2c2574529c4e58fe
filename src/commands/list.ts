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
  async run({ json }, { store, ui }) {
    const { base, projects } = await summariseProjects(store);
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
    ui.result(`${"PROJECT".padEnd(width)}  ${"PORT".padEnd(5)}  ${"STATUS".padEnd(8)}  GENERATION`);
    for (const p of projects) {
      const status = p.status === "running"
        ? c.green(p.status)
        : p.status === "stopped"
        ? c.red(p.status)
        : c.yellow(p.status);
      const generation = p.detached ? c.yellow(p.generation) : p.stale ? c.red(p.generation) : p.generation;
      ui.result(
        `${p.name.padEnd(width)}  ${String(p.port ?? "-").padEnd(5)}  ${padVisible(status, 8)}  ${generation}`,
      );
    }
    if (base.kind !== "missing") ui.info(`Base generation: ${describeGeneration(base)}`);
  },
});
