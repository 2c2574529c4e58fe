import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { runAttached } from "../core/store/process.ts";
import { requireVmPaths } from "../core/projects/project_lookup.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";
import { readOptionalText } from "../core/store/store.ts";
import { supervisorFor } from "../core/vm/supervisor.ts";
import { followFile } from "../ui/follow.ts";
import { stripTerminalControls } from "../core/guest/terminal_text.ts";

/** `virtdev log [-f] <project>`: the supervisor's log of a project VM. */
export const logCommand = defineCommand("log", {
  brief: `Show a project VM's log: journalctl for a systemd unit, vm.log otherwise.`,
  description:
    `vm.log records starts, stops, crashes found and QEMU's errors. The guest's serial output of the current boot is in console.log beside it.`,
  takesProject: true,
  options: {
    follow: flagOption(["-f", "--follow"], `Keep printing new lines.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, follow }, { store, ui }) {
    const paths = await requireVmPaths(store, project);
    const status = await inspectVm(paths);
    if (follow && status.state === "stopped") ui.warn(`${project} is not running; waiting for new lines anyway.`);
    const viewer = supervisorFor(status.record).logCommand(project, { follow });
    if (viewer) return await runAttached(viewer[0], viewer.slice(1));
    // vm.log quotes QEMU, and QEMU may quote the guest: no control sequences pass.
    const output = ui.guestStream((text) => ui.io.out(text));
    if (follow) return await followFile(paths.vmLog, output.write);
    const text = await readOptionalText(paths.vmLog);
    if (text === undefined) ui.info(`No log yet: ${project} has not been started.`);
    else ui.io.out(stripTerminalControls(text));
  },
});
