/**
 * Backup snapshots on disk: `backups/<project>/<YYYY-MM-DD>/<HH-MM-SS>/`.
 *
 * @module
 */
import { join } from "node:path";
import type { Store } from "./store.ts";

const _dayPattern = /^\d{4}-\d{2}-\d{2}$/;
const _timePattern = /^\d{2}-\d{2}-\d{2}(\.\d+)?$/;

/** Counts the finished snapshots of `project`; in-flight and junk entries are skipped. */
export async function countSnapshots(store: Store, project: string): Promise<number> {
  let count = 0;
  for (const day of await _directories(store.backups(project))) {
    if (!_dayPattern.test(day)) continue;
    count += (await _directories(join(store.backups(project), day))).filter((time) => _timePattern.test(time)).length;
  }
  return count;
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
