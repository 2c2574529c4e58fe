import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireVmSocket } from "../core/vm/vm_sockets.ts";
import { attachSocket } from "../ui/attach.ts";

/** `virtdev monitor <project>`: QEMU's human monitor. */
export const monitorCommand = defineCommand("monitor", {
  brief: `Attach to a project VM's QEMU monitor (HMP). Ctrl-] detaches; 'quit' kills the VM.`,
  description: `Commands can also be piped: 'echo "info status" | virtdev monitor p'.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, { store, ui }) {
    const socket = await requireVmSocket(store, project, "monitor");
    if (Deno.stdin.isTerminal()) ui.info(`Attached to the QEMU monitor of ${project}. Detach with Ctrl-].`);
    const end = await attachSocket(socket);
    if (end === "detached") ui.info("\r\nDetached.");
  },
});
