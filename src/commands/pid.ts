import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireRunningVm } from "../core/guest/guest_access.ts";

/** `virtdev pid <project>`: the running VM's QEMU process. */
export const pidCommand = defineCommand("pid", {
  brief: message`Print the PID of a running project VM's QEMU process.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    ui.result(String((await requireRunningVm(store, project, 4)).status.pid));
  },
});
