import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireVmSocket } from "../core/vm/vm_sockets.ts";
import { attachSocket } from "../ui/attach.ts";

/** `virtdev console <project>`: the guest's serial console. */
export const consoleCommand = defineCommand("console", {
  brief: `Attach to a project VM's serial console (logged in as dev). Ctrl-] detaches.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, { store, ui }) {
    const socket = await requireVmSocket(store, project, "console");
    ui.info(`Attached to the serial console of ${project}. Detach with Ctrl-].`);
    const end = await attachSocket(socket);
    if (end === "detached") ui.info("\r\nDetached.");
  },
});
