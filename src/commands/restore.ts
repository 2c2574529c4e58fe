import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { argument, flag } from "@optique/core/primitives";
import { string } from "@optique/core/valueparser";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { restoreProject } from "../core/state/restore.ts";
import { validateSnapshotId } from "../core/state/snapshots.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev restore [-v] <project> [snapshot]`: copies a snapshot back into the running VM. */
export const restoreCommand = defineCommand("restore", {
  brief: message`Copy a snapshot (the newest by default) back into a project's running VM.`,
  description:
    message`Writes only below /home/dev: the snapshot's manifest is checked again and symlinks that point out of the snapshot are skipped. Files in the guest that the snapshot lacks stay. Works on detached projects, and can simply be run again after a failure.`,
  takesProject: true,
  parser: object({
    verbose: withDefault(flag("-v", "--verbose", { description: message`Show each file rsync copies.` }), false),
    project: projectArgument(),
    snapshot: optional(argument(string({ metavar: "YYYY-MM-DD/HH-MM-SS" }))),
  }),
  async run({ project, snapshot, verbose }, { store, config, ui }) {
    if (snapshot !== undefined) validateSnapshotId(snapshot);
    validateProjectName(project);
    const output = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
    const result = await restoreProject(store, project, {
      config,
      reporter: ui,
      snapshot,
      verbose,
      progress: ui.io.stderrIsTerminal && !verbose,
      onOutput: output.write,
    });
    output.end();
    ui.success(`Restored ${result.stats.entries} entries from ${result.id} into ${project}.`);
  },
});
