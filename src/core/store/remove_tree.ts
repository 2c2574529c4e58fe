/**
 * Removing a directory tree whatever modes its directories have. Snapshot
 * trees keep the guest's modes (an exact restore needs them), and a guest
 * can make a directory 000 or 0555: the owner then cannot list it or
 * delete inside it, and a plain recursive remove fails halfway.
 *
 * @module
 */
import { join } from "./path.ts";
import { ExitCode, VirtdevError } from "./errors.ts";
import { shellWord } from "./shell_quote.ts";

/**
 * Removes `path` and everything below it. Each directory is first given
 * `u+rwx` (its other bits kept), from the top down, so that it can be
 * listed and emptied. Symbolic links are removed, never followed: only
 * entries that `lstat` says are directories are changed or entered. A
 * missing `path` is not an error.
 *
 * @throws {VirtdevError} exit 73, naming `path`, when something still
 *   cannot go (a file system that is read-only, an entry owned by another
 *   user).
 */
export async function removeTree(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  try {
    if (info.isDirectory) await _openUp(path, info);
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw new VirtdevError(`Could not remove ${path} whole: ${error instanceof Error ? error.message : error}.`, {
      exitCode: ExitCode.cleanupFailed,
      hint: [
        "Something in it belongs to another user, or its file system is read-only; what could go is gone.",
        `Look, then remove the rest by hand (e.g. sudo rm -rf -- ${shellWord(path)}).`,
      ],
      cause: error,
    });
  }
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
