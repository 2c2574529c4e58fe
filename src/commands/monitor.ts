import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { requireVmSocket } from "../core/vm/vm_sockets.ts";
import { attachSocket } from "../ui/attach.ts";

/** `virtdev monitor <project>`: QEMU's human monitor. */
export const monitorCommand = defineCommand("monitor", {
  brief: message`Attach to a project VM's QEMU monitor (HMP). Ctrl-] detaches; 'quit' kills the VM.`,
  description: message`Commands can also be piped: 'echo "info status" | virtdev monitor p'.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { store, ui }) {
    const socket = await requireVmSocket(store, project, "monitor");
    if (Deno.stdin.isTerminal()) ui.info(`Attached to the QEMU monitor of ${project}. Detach with Ctrl-].`);
    const end = await attachSocket(socket);
    if (end === "detached") ui.info("\r\nDetached.");
  },
});
