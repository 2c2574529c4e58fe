import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { VirtdevError } from "../core/errors.ts";
import { requireProject } from "../core/project.ts";
import { inspectVm } from "../core/runtime_state.ts";

/** `virtdev port <project>`: the running VM's SSH port. */
export const portCommand = defineCommand("port", {
  brief: message`Print a running project VM's SSH port on 127.0.0.1.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    const paths = await requireProject(store, project);
    const status = await inspectVm(paths);
    if (status.record === undefined || status.state === "stopped") {
      throw new VirtdevError(`Project ${project} is not running.`, {
        exitCode: 5,
        hint: `Start it with 'virtdev start ${project}'.`,
      });
    }
    ui.result(String(status.record.port));
  },
});
