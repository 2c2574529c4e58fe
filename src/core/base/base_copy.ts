/**
 * Copying the base's files for a maintenance session: a reflink where the
 * file system can share blocks (btrfs, XFS: instant, no space), otherwise
 * a plain copy that reports its progress.
 *
 * @module
 */
import { privateFileMode } from "../store/file_modes.ts";
import { temporaryPathFor } from "../store/atomic_write.ts";
import { runTool } from "../store/process.ts";

/** How a file was copied. */
export type CopyMethod = "reflink" | "copy";

const _chunkBytes = 8 << 20;

/**
 * Copies `source` to `target` (mode 0600), through a temporary name, so
 * that `target` is whole or absent.
 */
export async function copyWithProgress(
  source: string,
  target: string,
  options: { readonly onProgress?: (copied: number, total: number) => void } = {},
): Promise<CopyMethod> {
  const temporary = temporaryPathFor(target);
  try {
    const method = await _reflink(source, temporary) ? "reflink" : "copy";
    if (method === "copy") await _copyChunks(source, temporary, options.onProgress);
    await Deno.chmod(temporary, privateFileMode);
    await Deno.rename(temporary, target);
    return method;
  } catch (error) {
    // The copy's own error is the one to report; a leftover is named by it.
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/** Tries a reflink with cp(1); false where the file system cannot share blocks. */
async function _reflink(source: string, target: string): Promise<boolean> {
  const result = await runTool("cp", ["--reflink=always", "--", source, target], {
    allowFailure: true,
    missingHint: "Install coreutils.",
  });
  if (result.code === 0) return true;
  // cp may have left an empty file behind.
  await Deno.remove(target).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return false;
}

async function _copyChunks(
  source: string,
  target: string,
  onProgress: ((copied: number, total: number) => void) | undefined,
): Promise<void> {
  using input = await Deno.open(source, { read: true });
  using output = await Deno.open(target, { write: true, createNew: true, mode: privateFileMode });
  const total = (await input.stat()).size;
  const buffer = new Uint8Array(_chunkBytes);
  let copied = 0;
  for (;;) {
    const read = await input.read(buffer);
    if (read === null) break;
    let written = 0;
    while (written < read) written += await output.write(buffer.subarray(written, read));
    copied += read;
    onProgress?.(copied, total);
  }
  await output.sync();
}
