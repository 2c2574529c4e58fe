/**
 * Copying files the cheap way: reflinked where the file system shares
 * blocks (btrfs, XFS), sparse everywhere, through cp(1), which knows how.
 *
 * @module
 */
import { runTool } from "./process.ts";

/** Copies `paths` (files or directories, keeping their names) into the directory `target`. */
export async function copyReflinked(paths: readonly string[], target: string): Promise<void> {
  if (paths.length === 0) return;
  await runTool("cp", ["-a", "--reflink=auto", "--sparse=always", "--", ...paths, target], {
    missingHint: "Install coreutils (it provides cp).",
  });
}
