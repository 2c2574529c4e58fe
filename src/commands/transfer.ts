import { defineCommand, projectPositional } from "../cli/spec.ts";
import { transferDirection, transferFiles } from "../core/guest/transfer.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev transfer <project> <src> <dest>`: rsync to or from the guest. */
export const transferCommand = defineCommand("transfer", {
  brief: `Copy files to or from a project VM with rsync; ':' marks the guest side (':path' is under /home/dev).`,
  description:
    `Exactly one of SRC and DEST starts with ':'. Uses the same pinned SSH as 'virtdev ssh'. Trailing-slash rules are rsync's. Symlinks arrive as the same links, and nothing the guest sends is written through one. The exit code is rsync's.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
    source: { metavar: "SRC" },
    destination: { metavar: "DEST" },
  },
  async run({ project, source, destination }, { store, config, ui }) {
    validateProjectName(project);
    const direction = transferDirection(project, source, destination);
    ui.info(direction === "from-guest" ? `Copying from ${project}...` : `Copying to ${project}...`);
    const messages = ui.guestStream();
    const code = await transferFiles(store, project, {
      config,
      source,
      destination,
      onMessage: messages.write,
    });
    messages.end();
    return code;
  },
});
