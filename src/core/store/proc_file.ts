/**
 * Reads a file of /proc. Deno grants /proc reads only with --allow-all,
 * which virtdev never asks for, so cat(1) reads them.
 *
 * @module
 */
import { runTool } from "./process.ts";

/** The contents of `path` (under /proc), or `undefined` when it cannot be read. */
export async function readProcFile(path: string): Promise<string | undefined> {
  const result = await runTool("cat", [path], { allowFailure: true, maxCapture: 1 << 20 });
  return result.code === 0 ? result.stdout : undefined;
}
