/**
 * Restore: a snapshot's tree copied back into a running guest's
 * `/home/dev`. Nothing outside it is ever written: the snapshot's manifest
 * is checked again, and symlinks that point out of the tree are skipped
 * (`--safe-links`), so a tampered snapshot cannot reach elsewhere.
 *
 * @module
 */
import { join } from "node:path";
import { parseRsyncStats, rsyncCopyOptions, rsyncError, type RsyncStats } from "./backup.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { describeGeneration, readGeneration } from "../store/generation.ts";
import { requireRunningGuest } from "../guest/guest_access.ts";
import { parseManifest } from "./manifest.ts";
import { runTool } from "../store/process.ts";
import type { Reporter } from "../store/reporter.ts";
import { latestSnapshot, snapshotDir, validateSnapshotId } from "./snapshots.ts";
import { rsyncRemoteShell, sshDestination } from "../guest/ssh.ts";
import { pathExists, readOptionalText, type Store } from "../store/store.ts";

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
      } catch {
        break; // Missing: nothing to follow.
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
  if (!await pathExists(dir)) {
    throw new VirtdevError(`No snapshot ${id} of ${name}.`, {
      exitCode: RestoreExit.snapshotMissing,
      hint: `List them with 'virtdev backup --list ${name}'.`,
    });
  }
  const marker = (await readOptionalText(join(dir, "project")))?.trim();
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
  const manifestText = await readOptionalText(join(dir, "manifest"));
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
  if (!await pathExists(tree)) {
    throw new VirtdevError(`Snapshot ${id} has no tree/.`, { exitCode: RestoreExit.treeMissing });
  }
  const unsafe = await findEntryThroughSymlink(tree, entries);
  if (unsafe !== undefined) {
    throw new VirtdevError(`Snapshot ${id} is unsafe: the manifest path '${unsafe}' passes through a symlink.`, {
      exitCode: RestoreExit.unsafeEntry,
      hint: "Nothing was restored. The snapshot has been altered; restore another one.",
    });
  }
  const snapshotGeneration = describeGeneration(await readGeneration(join(dir, "generation")));
  const projectGeneration = describeGeneration(await readGeneration(guest.paths.generation));
  options.reporter.info(
    `Restoring ${name} from ${id} (snapshot generation ${snapshotGeneration}, project generation ${projectGeneration}).`,
  );

  const args = [
    ...rsyncCopyOptions,
    "--safe-links",
    ...(options.verbose ? ["--itemize-changes"] : []),
    ...(options.progress ? ["--info=progress2"] : []),
    "-e",
    rsyncRemoteShell(guest.target),
    "--",
    `${tree}/`,
    `${sshDestination}:/home/dev/`,
  ];
  const shown = options.verbose || options.progress;
  const result = await runTool("rsync", args, {
    stdin: `${entries.join("\n")}\n`,
    allowFailure: true,
    env: { LC_ALL: "C" },
    onOutput: shown ? (text) => options.onOutput?.(text) : undefined,
    missingHint: "Install rsync: 'pacman -S rsync' (Arch) or 'apt install rsync' (Debian).",
  });
  if (result.code !== 0) {
    throw rsyncError(
      result.code,
      result.stderr,
      { partial: RestoreExit.partialTransfer, transport: RestoreExit.transport, other: RestoreExit.rsyncFailed },
      "Restore failed",
      `The guest may be half restored; run the restore again: virtdev restore ${name} ${id}`,
    );
  }
  const stats = parseRsyncStats(result.stdout);
  if (stats.files === 0) {
    throw new VirtdevError(`Snapshot ${id} holds no files.`, { exitCode: RestoreExit.noFiles });
  }
  return { id, stats };
}
