import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireVmSocket } from "../core/vm/vm_sockets.ts";
import { attachSocket } from "../ui/attach.ts";

/** `virtdev console <project>`: the guest's serial console. */
export const consoleCommand = defineCommand("console", {
  brief: message`Attach to a project VM's serial console (logged in as dev). Ctrl-] detaches.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    const socket = await requireVmSocket(store, project, "console");
    ui.info(`Attached to the serial console of ${project}. Detach with Ctrl-].`);
    const end = await attachSocket(socket);
    if (end === "detached") ui.info("\r\nDetached.");
  },
});
