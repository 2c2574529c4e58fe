/**
 * Disk usage of files and directory trees, counted in allocated blocks so
 * that sparse and thin images show what they really cost.
 *
 * @module
 */
import { join } from "../store/path.ts";

/**
 * Bytes allocated to `path` and, for a directory, everything below it.
 * Symlinks are not followed. A directory that cannot be listed (a guest's
 * mode 000 in a snapshot tree) counts as itself alone: a size is a guide,
 * never a reason to fail.
 */
export async function allocatedBytes(path: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  let total = (info.blocks ?? 0) * 512;
  if (info.isDirectory) {
    try {
      for await (const entry of Deno.readDir(path)) total += await allocatedBytes(join(path, entry.name));
    } catch (error) {
      if (!(error instanceof Deno.errors.PermissionDenied)) throw error;
    }
  }
  return total;
}
