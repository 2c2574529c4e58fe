import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { argument } from "@optique/core/primitives";
import { string } from "@optique/core/valueparser";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { requireRunningGuest } from "../core/guest/guest_access.ts";
import { runAttached } from "../core/store/process.ts";
import { rsyncRemoteShell, sshDestination } from "../core/guest/ssh.ts";
import { validateProjectName } from "../core/store/store.ts";

/** Exit codes of `transfer`. */
export const TransferExit = { noneRemote: 9, bothRemote: 10 } as const;

/** `virtdev transfer <project> <src> <dest>`: rsync to or from the guest. */
export const transferCommand = defineCommand("transfer", {
  brief: message`Copy files to or from a project VM with rsync; ':' marks the guest side (':path' is under /home/dev).`,
  description:
    message`Exactly one of SRC and DEST starts with ':'. Uses the same pinned SSH as 'virtdev ssh'. Trailing-slash rules are rsync's. The exit code is rsync's.`,
  takesProject: true,
  parser: object({
    project: projectArgument(),
    source: argument(string({ metavar: "SRC" })),
    destination: argument(string({ metavar: "DEST" })),
  }),
  async run({ project, source, destination }, { store, config, ui }) {
    validateProjectName(project);
    const remoteSource = source.startsWith(":");
    const remoteDestination = destination.startsWith(":");
    if (remoteSource === remoteDestination) {
      throw new VirtdevError(
        remoteSource ? "Both sides are in the guest." : "Neither side is in the guest.",
        {
          exitCode: remoteSource ? TransferExit.bothRemote : TransferExit.noneRemote,
          hint: `Mark exactly one side with ':', e.g. 'virtdev transfer ${project} ./file :file'.`,
        },
      );
    }
    const { target } = await requireRunningGuest(store, project, { config, notRunningCode: 5 });
    const remote = (path: string): string => `${sshDestination}:${path.slice(1)}`;
    ui.info(remoteSource ? `Copying from ${project}...` : `Copying to ${project}...`);
    return await runAttached("rsync", [
      "-a",
      "-e",
      rsyncRemoteShell(target),
      "--",
      remoteSource ? remote(source) : source,
      remoteDestination ? remote(destination) : destination,
    ], { missingHint: "Install rsync: 'pacman -S rsync' (Arch) or 'apt install rsync' (Debian)." });
  },
});
