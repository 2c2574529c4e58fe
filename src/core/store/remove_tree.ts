/**
 * Removing a directory tree whatever modes its directories have. Snapshot
 * trees keep the guest's modes (an exact restore needs them), and a guest
 * can make a directory 000 or 0555: the owner then cannot list it or
 * delete inside it, and a plain recursive remove fails halfway.
 *
 * @module
 */
import { join } from "./path.ts";

/**
 * Removes `path` and everything below it. Each directory is first given
 * `u+rwx` (its other bits kept), from the top down, so that it can be
 * listed and emptied. Symbolic links are removed, never followed: only
 * entries that `lstat` says are directories are changed or entered. A
 * missing `path` is not an error.
 *
 * @throws the error of the removal when something still cannot go (e.g. a
 *   file system that is read-only, or an entry owned by another user).
 */
export async function removeTree(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (info.isDirectory) await _openUp(path, info);
  await Deno.remove(path, { recursive: true });
}

async function _openUp(dir: string, info: Deno.FileInfo): Promise<void> {
  const mode = info.mode ?? 0;
  if ((mode & 0o700) !== 0o700) await Deno.chmod(dir, (mode & 0o7777) | 0o700);
  for await (const entry of Deno.readDir(dir)) {
    // readDir does not follow links: a link to a directory is not a directory here.
    if (!entry.isDirectory) continue;
    const child = join(dir, entry.name);
    await _openUp(child, await Deno.lstat(child));
  }
}
