import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { UsageError } from "../core/store/errors.ts";
import {
  defaultSnapshotName,
  deleteDiskSnapshot,
  listDiskSnapshots,
  revertDiskSnapshot,
  takeDiskSnapshot,
} from "../core/projects/disk_snapshots.ts";
import { requireProject } from "../core/projects/project_lookup.ts";

/** `virtdev snapshot <project> [name]`, `--list [--json]`, `--revert`, `--delete`. */
export const snapshotCommand = defineCommand("snapshot", {
  brief: `Snapshot a stopped project's disks and firmware variables; --list, --revert NAME, --delete NAME.`,
  description:
    `A snapshot is kept inside the project's own disks (internal qcow2 snapshots) with a copy of its nvram: quick to take and to go back to, and gone with the disks (recreate, destroy). Backups are the other kind: files copied out of the guest, kept apart, that outlive recreate. The VM must be stopped. The default NAME is the UTC time.`,
  takesProject: true,
  options: {
    list: flagOption(["-l", "--list"], `List the project's snapshots.`),
    json: flagOption(["--json"], `With --list: print JSON.`),
    revert: flagOption(["--revert"], `Go back to snapshot NAME (the disks and nvram as they were).`),
    delete: flagOption(["--delete"], `Delete snapshot NAME.`),
  },
  positionals: {
    project: projectPositional,
    name: { metavar: "NAME", description: "The snapshot.", optional: true },
  },
  async run({ project, name, list, json, revert, delete: remove }, context) {
    const { store, ui } = context;
    if ([list, revert, remove].filter(Boolean).length > 1) {
      throw new UsageError("Use one of --list, --revert and --delete.");
    }
    if (list) {
      const snapshots = await listDiskSnapshots(await requireProject(store, project));
      if (json) {
        ui.result(JSON.stringify(snapshots));
      } else if (snapshots.length === 0) {
        ui.info(`${project} has no snapshots. Take one with: virtdev snapshot ${project} [NAME]`);
      } else {
        for (const snapshot of snapshots) ui.result(`${snapshot.name}  ${snapshot.createdAt}`);
      }
      return;
    }
    if ((revert || remove) && name === undefined) {
      throw new UsageError(`--${revert ? "revert" : "delete"} needs the snapshot's NAME.`, {
        hint: `List them with 'virtdev snapshot --list ${project}'.`,
      });
    }
    if (revert) {
      await withLock(context, `snapshot --revert ${project}`, () => revertDiskSnapshot(store, project, name!));
      ui.success(`${project} is back at snapshot ${name}.`);
      return;
    }
    if (remove) {
      await withLock(context, `snapshot --delete ${project}`, () => deleteDiskSnapshot(store, project, name!));
      ui.success(`Deleted snapshot ${name} of ${project}.`);
      return;
    }
    const taken = await withLock(
      context,
      `snapshot ${project}`,
      () => takeDiskSnapshot(store, project, name ?? defaultSnapshotName()),
    );
    ui.success(`Snapshot ${taken.name} of ${project} taken.`);
    ui.result(taken.name);
  },
});
