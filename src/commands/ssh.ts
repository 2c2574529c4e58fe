import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireRunningGuest } from "../core/guest/guest_access.ts";
import { runAttached } from "../core/store/process.ts";
import { sshArguments } from "../core/guest/ssh.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev ssh <project> [--] [command...]`: a shell or a command in the guest. */
export const sshCommand = defineCommand("ssh", {
  brief: `Open a shell in a project VM, or run a command there (put '--' before arguments that start with '-').`,
  description:
    `Logs in as 'dev' with your virtdev key, checking the project's pinned host key. Standard input passes through ('virtdev ssh p -- bash -s < script') and the exit code is the remote command's (255 when SSH itself fails). Your ~/.ssh/config is not read, so no agent or X11 forwarding reaches the guest.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
    command: { metavar: "COMMAND", description: `The command and its arguments.`, variadic: true },
  },
  async run({ project, command }, { store, config }) {
    validateProjectName(project);
    const { target } = await requireRunningGuest(store, project, { config, notRunningCode: 5 });
    return await runAttached("ssh", sshArguments(target, command), {
      missingHint: "Install the OpenSSH client: 'pacman -S openssh' (Arch) or 'apt install openssh-client' (Debian).",
    });
  },
});
