/**
 * Backups: the manifest's paths under `/home/dev` copied out of a running
 * guest with rsync over the project's pinned SSH, into a snapshot that
 * appears whole or not at all, deduplicated against the previous one with
 * hard links (`--link-dest`).
 *
 * @module
 */
import { join } from "../store/path.ts";
import { removeTree } from "../store/remove_tree.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { requireRunningGuest } from "../guest/guest_access.ts";
import { holdFileLock } from "../store/lock.ts";
import { privateDirectoryMode, privateFileMode } from "../store/file_modes.ts";
import { loadManifest } from "./manifest.ts";
import { copyManifestPaths, requireSafeRsync, type RsyncStats } from "../guest/rsync.ts";
import type { Reporter } from "../store/reporter.ts";
import {
  latestSnapshot,
  listSnapshots,
  mungedLinksMarker,
  snapshotDir,
  snapshotIdAt,
  snapshotLinksFile,
} from "./snapshots.ts";
import { rsyncRemoteShell, sshDestination } from "../guest/ssh.ts";
import { readOptionalText, type Store } from "../store/store.ts";

/** Exit codes of `backup` (manifest codes 8, 9, 15, 16 come from the manifest). */
export const BackupExit = {
  notRunning: 4,
  partialTransfer: 7,
  noFiles: 11,
  transport: 17,
  rsyncFailed: 18,
} as const;

/** What a finished backup produced. */
export interface BackupResult {
  readonly id: string;
  readonly dir: string;
  readonly stats: RsyncStats;
  /** Snapshots removed by `keep`. */
  readonly pruned: readonly string[];
}

/**
 * Backs up project `name`. Backups of one project run one at a time (a
 * per-project lock), so two never collide or nest; the store lock is not
 * taken, so other projects carry on.
 */
export async function backupProject(
  store: Store,
  name: string,
  options: {
    readonly config: Pick<Config, "sshKey" | "configDir">;
    readonly reporter: Reporter;
    /** Show rsync's per-file output. */
    readonly verbose?: boolean;
    /** Show rsync's progress line (on a terminal). */
    readonly progress?: boolean;
    /** Keep at most this many snapshots, pruning the oldest. */
    readonly keep?: number;
    /** Where rsync's output goes when shown. */
    readonly onOutput?: (text: string) => void;
  },
): Promise<BackupResult> {
  const guest = await requireRunningGuest(store, name, {
    config: options.config,
    notRunningCode: BackupExit.notRunning,
  });
  const manifest = await loadManifest(store, options.config, name);
  await requireSafeRsync();
  options.reporter.info(`manifest: ${manifest.path}`);
  const backups = store.backups(name);
  await Deno.mkdir(backups, { recursive: true, mode: privateDirectoryMode });
  using _lock = await holdFileLock(join(backups, ".lock"));
  await _removeAbandonedPartials(backups);

  const partial = join(backups, `.partial-${Deno.pid}`);
  await Deno.mkdir(partial, { mode: privateDirectoryMode });
  let finished = false;
  try {
    await Deno.writeTextFile(join(partial, "project"), `${name}\n`, { mode: privateFileMode });
    await Deno.writeTextFile(join(partial, "manifest"), manifest.text, { mode: privateFileMode });
    const generation = (await readOptionalText(guest.paths.generation)) ?? "";
    await Deno.writeTextFile(join(partial, "generation"), generation, { mode: privateFileMode });
    await Deno.writeTextFile(join(partial, snapshotLinksFile), `${mungedLinksMarker}\n`, { mode: privateFileMode });
    await Deno.mkdir(join(partial, "tree"), { mode: privateDirectoryMode });

    const linkDest = await _linkDestination(store, name, options.reporter);
    const stats = await copyManifestPaths(manifest.entries, {
      from: `${sshDestination}:/home/dev/`,
      to: `${join(partial, "tree")}/`,
      remoteShell: rsyncRemoteShell(guest.target),
      linkDest,
      verbose: options.verbose,
      progress: options.progress,
      onOutput: options.onOutput,
      failure: {
        codes: {
          partial: BackupExit.partialTransfer,
          transport: BackupExit.transport,
          other: BackupExit.rsyncFailed,
        },
        what: "Backup failed",
      },
    });
    if (stats.entries === 0) {
      throw new VirtdevError(`Backup found no files: none of the manifest's paths exist in ${name}.`, {
        exitCode: BackupExit.noFiles,
        hint: `Check the paths in ${manifest.path} (relative to /home/dev).`,
      });
    }
    const id = await _commit(store, name, partial);
    finished = true;
    const pruned = options.keep === undefined ? [] : await _prune(store, name, options.keep, id);
    return { id, dir: snapshotDir(store, name, id), stats, pruned };
  } finally {
    if (!finished) {
      await removeTree(partial).catch((error) =>
        options.reporter.warn(`could not remove the unfinished backup ${partial}: ${error}`)
      );
    }
  }
}

/**
 * The previous snapshot's tree, when it is safe to hard-link against: rsync
 * looks up each incoming path in it, so every symlink in it must be munged
 * (snapshots made before virtdev munged links are not used), and the
 * snapshot and its tree must be real directories.
 */
async function _linkDestination(store: Store, name: string, reporter: Reporter): Promise<string | undefined> {
  const previous = await latestSnapshot(store, name);
  if (previous === undefined) return undefined;
  const dir = snapshotDir(store, name, previous);
  const tree = join(dir, "tree");
  const marker = join(dir, snapshotLinksFile);
  try {
    const [dirInfo, treeInfo, markerInfo] = await Promise.all([Deno.lstat(dir), Deno.lstat(tree), Deno.lstat(marker)]);
    if (
      dirInfo.isDirectory && treeInfo.isDirectory && markerInfo.isFile &&
      (await Deno.readTextFile(marker)).trim() === mungedLinksMarker
    ) {
      return tree;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  reporter.info(`The previous snapshot ${previous} keeps unmunged symlinks; this backup copies every file afresh.`);
  return undefined;
}

/** Renames the finished snapshot to the current UTC second, never onto an existing one. */
async function _commit(store: Store, name: string, partial: string): Promise<string> {
  for (;;) {
    const id = snapshotIdAt(new Date());
    const target = snapshotDir(store, name, id);
    await Deno.mkdir(join(target, ".."), { recursive: true, mode: privateDirectoryMode });
    try {
      await Deno.lstat(target);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      await Deno.rename(partial, target);
      return id;
    }
    // A snapshot of this second exists: take the next second.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
  }
}

/** Removes the oldest snapshots beyond `keep`, never `current`. */
async function _prune(store: Store, name: string, keep: number, current: string): Promise<string[]> {
  const ids = (await listSnapshots(store, name)).filter((id) => id !== current);
  const doomed = ids.slice(0, Math.max(0, ids.length - (keep - 1)));
  for (const id of doomed) {
    // Renamed out of the snapshot namespace first, so a crash leaves no half snapshot behind.
    const dir = snapshotDir(store, name, id);
    const trash = join(store.backups(name), `.partial-prune-${Deno.pid}`);
    await Deno.rename(dir, trash);
    await removeTree(trash);
    await Deno.remove(join(dir, "..")).catch(() => {}); // the day directory, once empty
  }
  return doomed;
}

async function _removeAbandonedPartials(backups: string): Promise<void> {
  for await (const entry of Deno.readDir(backups)) {
    if (entry.name.startsWith(".partial-")) {
      await removeTree(join(backups, entry.name));
    }
  }
}
