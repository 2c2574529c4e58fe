/**
 * Reads a file of /proc. Deno grants /proc reads only with --allow-all,
 * which virtdev never asks for, so cat(1) reads them.
 *
 * @module
 */
import { ExitCode, ToolError } from "./errors.ts";
import { runTool } from "./process.ts";

/** The contents of `path` (under /proc), or `undefined` when it cannot be read (or cat is missing). */
export async function readProcFile(path: string): Promise<string | undefined> {
  try {
    const result = await runTool("cat", [path], { allowFailure: true, maxCapture: 1 << 20 });
    return result.code === 0 ? result.stdout : undefined;
  } catch (error) {
    if (error instanceof ToolError && error.exitCode === ExitCode.toolMissing) return undefined;
    throw error;
  }
}
