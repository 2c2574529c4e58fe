/**
 * Crash-safe file writes: the data goes to a temporary file in the same
 * directory, is flushed, and then renamed over the target. A reader sees the
 * old content or the new one, never a mix.
 *
 * @module
 */
import { basename, dirname, join } from "./path.ts";
import { privateFileMode } from "./file_modes.ts";

/** Options for {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Permission bits of the new file (default 0o600: only the user). */
  readonly mode?: number;
}

/** Writes `data` to `path` atomically. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temporary = temporaryPathFor(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    const file = await Deno.open(temporary, { write: true, createNew: true, mode: options.mode ?? privateFileMode });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    // The mode given to open() is filtered by the umask; set it exactly.
    await Deno.chmod(temporary, options.mode ?? privateFileMode);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Copies `source` to `target` atomically, keeping nothing of a half copy. */
export async function copyFileAtomic(
  source: string,
  target: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temporary = temporaryPathFor(target);
  try {
    await Deno.copyFile(source, temporary);
    await Deno.chmod(temporary, options.mode ?? privateFileMode);
    const file = await Deno.open(temporary, { read: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, target);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/** A unique temporary name beside `path`, in the form `.<name>.<pid>.<n>.tmp`. */
export function temporaryPathFor(path: string): string {
  _counter++;
  return join(dirname(path), `.${basename(path)}.${Deno.pid}.${_counter}.tmp`);
}

/** Flushes a directory so that renames in it survive a power loss. */
export async function syncDirectory(path: string): Promise<void> {
  try {
    const directory = await Deno.open(path, { read: true });
    try {
      await directory.sync();
    } finally {
      directory.close();
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename still holds.
  }
}

let _counter = 0;
