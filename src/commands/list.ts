import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { withDefault } from "@optique/core/modifiers";
import { flag } from "@optique/core/primitives";
import { defineCommand } from "../cli/command.ts";
import { describeGeneration } from "../core/store/generation.ts";
import { summariseProjects } from "../core/projects/project_summary.ts";
import { padVisible } from "../ui/color.ts";

/** `virtdev list [--json]`: the projects with port, status and generation. */
export const listCommand = defineCommand("list", {
  brief: message`List projects with port, status and generation.`,
  parser: object({
    json: withDefault(flag("--json", { description: message`Print a JSON array instead of a table.` }), false),
  }),
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
