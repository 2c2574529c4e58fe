/**
 * Backup snapshots on disk: `backups/<project>/<YYYY-MM-DD>/<HH-MM-SS>/`,
 * each holding `project` (whose it is), `manifest`, `generation`, `links`
 * (how its symlinks are stored) and `tree/`. A snapshot in progress is a hidden `.partial-*` directory and
 * never counts.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import type { Store } from "../store/store.ts";

const _dayPattern = /^\d{4}-\d{2}-\d{2}$/;
const _timePattern = /^\d{2}-\d{2}-\d{2}$/;

/** The file in a snapshot that says how its symlinks are stored. */
export const snapshotLinksFile = "links";

/**
 * The content of {@link snapshotLinksFile} in a snapshot whose symlinks
 * are munged (see `rsync.ts`). Older snapshots lack the file.
 */
export const mungedLinksMarker = "munged";

/** A snapshot id: `YYYY-MM-DD/HH-MM-SS` (UTC). */
export const snapshotIdPattern: RegExp = /^\d{4}-\d{2}-\d{2}\/\d{2}-\d{2}-\d{2}$/;

/**
 * Checks a snapshot id's format.
 *
 * @throws {VirtdevError} exit 79.
 */
export function validateSnapshotId(id: string): string {
  if (!snapshotIdPattern.test(id)) {
    throw new VirtdevError(`Invalid snapshot id: ${JSON.stringify(id)}.`, {
      exitCode: ExitCode.invalidSnapshot,
      hint: "A snapshot id looks like 2026-11-22/14-03-59; list them with 'virtdev backup --list <project>'.",
    });
  }
  return id;
}

/** The snapshot id for the UTC time `date`. */
export function snapshotIdAt(date: Date): string {
  const iso = date.toISOString(); // 2026-11-22T14:03:59.123Z
  return `${iso.slice(0, 10)}/${iso.slice(11, 19).replaceAll(":", "-")}`;
}

/** The time a snapshot id names. */
export function snapshotTime(id: string): Date {
  const [day, time] = id.split("/");
  return new Date(`${day}T${time.replaceAll("-", ":")}Z`);
}

/** The directory of snapshot `id` of `project`. */
export function snapshotDir(store: Store, project: string, id: string): string {
  return join(store.backups(project), id);
}

/** The finished snapshots of `project`, oldest first. In-progress and junk entries are skipped. */
export async function listSnapshots(store: Store, project: string): Promise<string[]> {
  const ids: string[] = [];
  for (const day of await _directories(store.backups(project))) {
    if (!_dayPattern.test(day)) continue;
    for (const time of await _directories(join(store.backups(project), day))) {
      if (_timePattern.test(time)) ids.push(`${day}/${time}`);
    }
  }
  return ids.sort();
}

/** The newest snapshot of `project` across all days, if any. */
export async function latestSnapshot(store: Store, project: string): Promise<string | undefined> {
  return (await listSnapshots(store, project)).at(-1);
}

/** Counts the finished snapshots of `project`. */
export async function countSnapshots(store: Store, project: string): Promise<number> {
  return (await listSnapshots(store, project)).length;
}

/** Counts the snapshots of every project that has a backup directory. */
export async function countAllSnapshots(store: Store): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const project of await _directories(store.backupsDir)) {
    counts.set(project, await countSnapshots(store, project));
  }
  return counts;
}

async function _directories(path: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(path))).filter((entry) => entry.isDirectory).map((entry) => entry.name)
      .sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
