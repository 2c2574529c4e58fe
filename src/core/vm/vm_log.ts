/**
 * The per-project supervisor log (`vm.log`): one timestamped line per
 * start, stop, crash found and QEMU error, for `virtdev log`. Past 1 MiB it
 * becomes `vm.log.1` and a new one begins, so it never grows without end.
 *
 * @module
 */
import { privateFileMode } from "../store/file_modes.ts";
import type { ProjectPaths } from "../store/store.ts";

let _echo: ((text: string) => void) | undefined;

/**
 * Also writes every line appended from now on to stderr. The host agent
 * does: under systemd its stderr is the unit's journal, which 'virtdev log'
 * shows; under virtdev's own supervisor it goes nowhere.
 */
export function echoVmLogToStderr(): void {
  const encoder = new TextEncoder();
  _echo = (text) => {
    try {
      Deno.stderr.writeSync(encoder.encode(text));
    } catch {
      // No stderr to write to.
    }
  };
}

/** The size at which vm.log is rotated. */
export const vmLogRotateBytes = 1 << 20;

/**
 * Appends `lines` to the project's vm.log, each stamped with the UTC time.
 * A log that cannot be written never fails the operation it records.
 */
export async function appendVmLog(paths: ProjectPaths, lines: string | readonly string[]): Promise<void> {
  const stamp = new Date().toISOString();
  const text = (typeof lines === "string" ? [lines] : lines).map((line) => `${stamp} ${line}\n`).join("");
  _echo?.(text);
  try {
    if ((await Deno.stat(paths.vmLog)).size > vmLogRotateBytes) await Deno.rename(paths.vmLog, `${paths.vmLog}.1`);
  } catch {
    // No log yet, or it cannot be rotated: append to what is there.
  }
  await Deno.writeTextFile(paths.vmLog, text, { append: true, create: true, mode: privateFileMode }).catch(() => {});
}
