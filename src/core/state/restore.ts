/**
 * Restore: a snapshot's tree copied back into a running guest's
 * `/home/dev`. The snapshot's manifest is checked again; the snapshot
 * directory and its tree must be real directories, and no manifest path
 * may pass through a symlink, so the host never reads beyond the tree.
 * Every symlink comes back exactly as the guest made it (rsync unmunges
 * them as it sends), wherever it points: in the guest, it is the guest's
 * own data.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { describeGeneration, readGeneration } from "../store/generation.ts";
import { requireRunningGuest } from "../guest/guest_access.ts";
import { projectRunState } from "../vm/runtime_state.ts";
import { suspendedError } from "../vm/suspended_error.ts";
import { parseManifest } from "./manifest.ts";
import { copyManifestPaths, requireSafeRsync, type RsyncStats } from "../guest/rsync.ts";
import type { Reporter } from "../store/reporter.ts";
import { latestSnapshot, snapshotDir, validateSnapshotId } from "./snapshots.ts";
import { rsyncRemoteShell, sshDestination } from "../guest/ssh.ts";
import type { Store } from "../store/store.ts";

/** Exit codes of `restore`. */
export const RestoreExit = {
  notRunning: 4,
  partialTransfer: 7,
  noSnapshots: 8,
  manifestMissing: 10,
  noFiles: 11,
  otherProject: 12,
  snapshotMissing: 16,
  transport: 21,
  rsyncFailed: 22,
  treeMissing: 23,
  markerMissing: 24,
  unsafeEntry: 25,
  badManifest: 26,
} as const;

/**
 * Finds a manifest entry that passes through a symlink inside the tree.
 * rsync would follow such a link on the host while reading the tree, so a
 * tampered snapshot could hand host files to the guest.
 */
export async function findEntryThroughSymlink(tree: string, entries: readonly string[]): Promise<string | undefined> {
  for (const entry of entries) {
    const parts = entry.split("/").filter((part) => part !== "" && part !== ".");
    for (let i = 1; i < parts.length; i++) {
      try {
        if ((await Deno.lstat(join(tree, ...parts.slice(0, i)))).isSymlink) return entry;
      } catch (error) {
        // Missing, or a file where a directory would be: nothing to follow.
        if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) break;
        throw error;
      }
    }
  }
  return undefined;
}

/** What a restore did. */
export interface RestoreResult {
  readonly id: string;
  readonly stats: RsyncStats;
}

/**
 * Restores snapshot `id` (the newest by default) of project `name` into
 * its running guest. Extra files in the guest stay; a re-run after a
 * failure simply copies again.
 */
export async function restoreProject(
  store: Store,
  name: string,
  options: {
    readonly config: Pick<Config, "sshKey">;
    readonly reporter: Reporter;
    readonly snapshot?: string;
    readonly verbose?: boolean;
    readonly progress?: boolean;
    readonly onOutput?: (text: string) => void;
  },
): Promise<RestoreResult> {
  if (options.snapshot !== undefined) validateSnapshotId(options.snapshot);
  if (await projectRunState(store, name) === "suspended") {
    throw suspendedError(name, "restore into it", { resumeFirst: true });
  }
  const guest = await requireRunningGuest(store, name, {
    config: options.config,
    notRunningCode: RestoreExit.notRunning,
  });
  const id = options.snapshot ?? await latestSnapshot(store, name);
  if (id === undefined) {
    throw new VirtdevError(`Project ${name} has no snapshots.`, {
      exitCode: RestoreExit.noSnapshots,
      hint: `Make one with 'virtdev backup ${name}'.`,
    });
  }
  const dir = snapshotDir(store, name, id);
  const dirKind = await _entryKind(dir);
  if (dirKind === "missing") {
    throw new VirtdevError(`No snapshot ${id} of ${name}.`, {
      exitCode: RestoreExit.snapshotMissing,
      hint: `List them with 'virtdev backup --list ${name}'.`,
    });
  }
  if (dirKind !== "directory") throw _unsafeSnapshot(id, `${dir} is not a real directory`);
  await requireSafeRsync();
  const marker = (await _readSnapshotFile(id, join(dir, "project")))?.trim();
  if (marker === undefined) {
    throw new VirtdevError(`Snapshot ${id} has no 'project' marker; it was not made by this virtdev.`, {
      exitCode: RestoreExit.markerMissing,
    });
  }
  if (marker !== name) {
    throw new VirtdevError(`Snapshot ${id} belongs to project '${marker}', not '${name}'.`, {
      exitCode: RestoreExit.otherProject,
      hint: "Snapshots are restored only into the project they came from.",
    });
  }
  const manifestText = await _readSnapshotFile(id, join(dir, "manifest"));
  if (manifestText === undefined) {
    throw new VirtdevError(`Snapshot ${id} has no manifest.`, { exitCode: RestoreExit.manifestMissing });
  }
  // Checked again: the snapshot may have been edited since the backup.
  let entries: string[];
  try {
    entries = parseManifest(manifestText, join(dir, "manifest"));
  } catch (error) {
    if (!(error instanceof VirtdevError)) throw error;
    throw new VirtdevError(error.message, {
      exitCode: RestoreExit.badManifest,
      hint: "Nothing was restored. The snapshot has been altered; restore another one.",
    });
  }
  const tree = join(dir, "tree");
  const treeKind = await _entryKind(tree);
  if (treeKind === "missing") {
    throw new VirtdevError(`Snapshot ${id} has no tree/.`, { exitCode: RestoreExit.treeMissing });
  }
  if (treeKind !== "directory") throw _unsafeSnapshot(id, `its tree/ is not a real directory`);
  const unsafe = await findEntryThroughSymlink(tree, entries);
  if (unsafe !== undefined) {
    throw _unsafeSnapshot(id, `the manifest path '${unsafe}' passes through a symlink`);
  }
  const snapshotGeneration = describeGeneration(await readGeneration(join(dir, "generation")));
  const projectGeneration = describeGeneration(await readGeneration(guest.paths.generation));
  options.reporter.info(
    `Restoring ${name} from ${id} (snapshot generation ${snapshotGeneration}, project generation ${projectGeneration}).`,
  );

  const stats = await copyManifestPaths(entries, {
    from: `${tree}/`,
    to: `${sshDestination}:/home/dev/`,
    remoteShell: rsyncRemoteShell(guest.target),
    verbose: options.verbose,
    progress: options.progress,
    onOutput: options.onOutput,
    failure: {
      codes: { partial: RestoreExit.partialTransfer, transport: RestoreExit.transport, other: RestoreExit.rsyncFailed },
      what: "Restore failed",
      hint: `The guest may be half restored; run the restore again: virtdev restore ${name} ${id}`,
    },
  });
  if (stats.entries === 0) {
    throw new VirtdevError(`Snapshot ${id} holds no files.`, { exitCode: RestoreExit.noFiles });
  }
  return { id, stats };
}

function _unsafeSnapshot(id: string, why: string): VirtdevError {
  return new VirtdevError(`Snapshot ${id} is unsafe: ${why}.`, {
    exitCode: RestoreExit.unsafeEntry,
    hint: "Nothing was restored. The snapshot has been altered; restore another one.",
  });
}

async function _entryKind(path: string): Promise<"missing" | "directory" | "file" | "other"> {
  try {
    const info = await Deno.lstat(path);
    return info.isDirectory ? "directory" : info.isFile ? "file" : "other";
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "missing";
    throw error;
  }
}

/** Reads one of virtdev's own files in a snapshot; a symlink or other non-file is refused, never followed. */
async function _readSnapshotFile(id: string, path: string): Promise<string | undefined> {
  const kind = await _entryKind(path);
  if (kind === "missing") return undefined;
  if (kind !== "file") throw _unsafeSnapshot(id, `${path} is not a regular file`);
  return await Deno.readTextFile(path);
}
