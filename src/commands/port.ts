import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireRunningVm } from "../core/guest/guest_access.ts";

/** `virtdev port <project>`: the running VM's SSH port. */
export const portCommand = defineCommand("port", {
  brief: message`Print a running project VM's SSH port on 127.0.0.1.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    ui.result(String((await requireRunningVm(store, project, 5)).record.port));
  },
});
