import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireRunningVm } from "../core/guest/guest_access.ts";

/** `virtdev pid <project>`: the running VM's QEMU process. */
export const pidCommand = defineCommand("pid", {
  brief: `Print the PID of a running project VM's QEMU process.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, { store, ui }) {
    ui.result(String((await requireRunningVm(store, project, 4)).status.pid));
  },
});
