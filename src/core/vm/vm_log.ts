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

/** The most lines waiting to be written; past it lines are counted, not kept. */
const _maxPendingLines = 256;
let _pending = 0;
let _dropped = 0;
let _queue: Promise<void> = Promise.resolve();

/**
 * Appends `lines` to the project's vm.log, each stamped with the UTC time.
 * Writes go one at a time, in order, each after the rotation check, so a
 * caller that does not wait (a flood of console markers) can neither race
 * the rotation nor pile up writes: past {@link _maxPendingLines} waiting
 * lines, further ones are only counted, and the count is written once the
 * queue drains. A log that cannot be written never fails the operation it
 * records.
 */
export function appendVmLog(paths: ProjectPaths, lines: string | readonly string[]): Promise<void> {
  const list = typeof lines === "string" ? [lines] : lines;
  if (_pending + list.length > _maxPendingLines) {
    _dropped += list.length;
    return _queue;
  }
  _pending += list.length;
  const stamp = new Date().toISOString();
  const text = list.map((line) => `${stamp} ${line}\n`).join("");
  _echo?.(text);
  _queue = _queue.then(async () => {
    await _append(paths, text);
    _pending -= list.length;
    if (_pending === 0 && _dropped > 0) {
      const note = `${
        new Date().toISOString()
      } (${_dropped} log lines dropped: they came faster than they could be written)\n`;
      _dropped = 0;
      _echo?.(note);
      await _append(paths, note);
    }
  });
  return _queue;
}

async function _append(paths: ProjectPaths, text: string): Promise<void> {
  try {
    if ((await Deno.stat(paths.vmLog)).size > vmLogRotateBytes) await Deno.rename(paths.vmLog, `${paths.vmLog}.1`);
  } catch {
    // No log yet, or it cannot be rotated: append to what is there.
  }
  await Deno.writeTextFile(paths.vmLog, text, { append: true, create: true, mode: privateFileMode }).catch(() => {});
}
