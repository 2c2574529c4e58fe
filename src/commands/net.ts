import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { argument } from "@optique/core/primitives";
import { choice } from "@optique/core/valueparser";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireProject } from "../core/projects/project.ts";
import { egressSettings, readProjectEgress, writeProjectEgress } from "../core/vm/network.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";

/** `virtdev net <project> [none|full]`: what the guest may reach. */
export const netCommand = defineCommand("net", {
  brief: message`Show or set what a project's guest may reach: none or full (the default).`,
  description:
    message`none: nothing at all (no DNS, no internet, no host); only the SSH forward and the project's forwards come in. full: the internet and the LAN, never the host's loopback (with passt). Kept in the project and applied at the next start; 'start --net' overrides it for one boot.`,
  takesProject: true,
  parser: object({
    project: projectArgument(),
    egress: optional(argument(choice(egressSettings, { metavar: "EGRESS" }))),
  }),
  async run({ project, egress }, { store, ui }) {
    const paths = await requireProject(store, project);
    if (egress === undefined) {
      ui.result(await readProjectEgress(paths));
      return;
    }
    await writeProjectEgress(paths, egress);
    const vm = await inspectVm(paths);
    const now = vm.record?.network?.egress;
    if (vm.state !== "stopped" && now !== egress) {
      ui.info(`${project} runs with egress ${now ?? "full"}; '${egress}' applies from its next start.`);
    } else {
      ui.success(`Egress of ${project}: ${egress}.`);
    }
  },
});
