import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireProject } from "../core/project.ts";
import { projectRunState } from "../core/runtime_state.ts";

/** `virtdev status <project>`: prints the VM's run state. */
export const statusCommand = defineCommand("status", {
  brief: message`Print a project VM's state: running or stopped.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    await requireProject(store, project);
    ui.result(await projectRunState(store, project));
  },
});
