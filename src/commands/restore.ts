import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { restoreProject } from "../core/state/restore.ts";
import { validateSnapshotId } from "../core/state/snapshots.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev restore [-v] <project> [snapshot]`: copies a snapshot back into the running VM. */
export const restoreCommand = defineCommand("restore", {
  brief: `Copy a snapshot (the newest by default) back into a project's running VM.`,
  description:
    `Writes only below /home/dev: the snapshot's manifest is checked again and symlinks that point out of the snapshot are skipped. Files in the guest that the snapshot lacks stay. Works on detached projects, and can simply be run again after a failure.`,
  takesProject: true,
  options: {
    verbose: flagOption(["-v", "--verbose"], `Show each file rsync copies.`),
  },
  positionals: {
    project: projectPositional,
    snapshot: { metavar: "YYYY-MM-DD/HH-MM-SS", optional: true },
  },
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
