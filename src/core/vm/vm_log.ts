/**
 * The per-project supervisor log (`vm.log`): one timestamped line per
 * start, stop, crash found and QEMU error, for `virtdev log`.
 *
 * @module
 */
import { privateFileMode } from "../store/file_modes.ts";
import type { ProjectPaths } from "../store/store.ts";

/** Appends `lines` to the project's vm.log, each stamped with the UTC time. */
export async function appendVmLog(paths: ProjectPaths, lines: string | readonly string[]): Promise<void> {
  const stamp = new Date().toISOString();
  const text = (typeof lines === "string" ? [lines] : lines).map((line) => `${stamp} ${line}\n`).join("");
  await Deno.writeTextFile(paths.vmLog, text, { append: true, create: true, mode: privateFileMode }).catch(() => {});
}
