import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { egressSettings, readProjectEgress, writeProjectEgress } from "../core/vm/network.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";

/** `virtdev net <project> [none|full]`: what the guest may reach. */
export const netCommand = defineCommand("net", {
  brief: `Show or set what a project's guest may reach: none or full (the default).`,
  description:
    `none: nothing at all (no DNS, no internet, no host); only the SSH forward and the project's forwards come in. full: the internet and the LAN, never the host's loopback (with passt). Kept in the project and applied at the next start; 'start --net' overrides it for one boot.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
    egress: { metavar: "EGRESS", choices: egressSettings, optional: true },
  },
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
