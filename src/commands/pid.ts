import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { VirtdevError } from "../core/errors.ts";
import { requireProject } from "../core/project.ts";
import { inspectVm } from "../core/runtime_state.ts";

/** `virtdev pid <project>`: the running VM's QEMU process. */
export const pidCommand = defineCommand("pid", {
  brief: message`Print the PID of a running project VM's QEMU process.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    const paths = await requireProject(store, project);
    const status = await inspectVm(paths);
    if (status.pid === undefined) {
      throw new VirtdevError(`Project ${project} is not running.`, {
        exitCode: 4,
        hint: `Start it with 'virtdev start ${project}'.`,
      });
    }
    ui.result(String(status.pid));
  },
});
