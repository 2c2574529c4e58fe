/**
 * Whether some process has a project's disks open, whoever started it.
 * QEMU locks every image it opens (OFD locks on bytes 100+ and 200+), and
 * the kernel lists those locks in /proc/locks by device and inode: one
 * small read finds a QEMU that virtdev did not start (the original tool's
 * systemd unit, or one started by hand) without asking the process table.
 *
 * @module
 */
import { findProcesses } from "../store/processes.ts";
import { runTool } from "../store/process.ts";
import { readProcFile } from "../store/proc_file.ts";

/** Where the kernel lists file locks. */
export const procLocks = "/proc/locks";

/** The device (`major:minor`, hex, as /proc/locks writes it) and inode of a file. */
function _lockKey(info: Deno.FileInfo): string | undefined {
  if (info.dev === null || info.ino === null) return undefined;
  // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
  const dev = BigInt(info.dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${info.ino}`;
}

/** The device:inode keys of every lock in `text` (the contents of /proc/locks). */
export function lockedKeys(text: string): Set<string> {
  const keys = new Set<string>();
  for (const line of text.split("\n")) {
    // "12: OFDLCK ADVISORY  READ -1 fe:00:2146424 100 101"; waiters are "12: -> …".
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && fields[1] !== "->") keys.add(fields[5]);
  }
  return keys;
}

/**
 * The files among `files` that some process holds a lock on. A file that
 * does not exist is not in use; without /proc/locks nothing is known
 * (an empty list).
 */
export async function filesInUse(files: readonly string[]): Promise<string[]> {
  const locked = lockedKeys(await _locksText());
  if (locked.size === 0) return [];
  const found: string[] = [];
  for (const file of files) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    const key = _lockKey(info);
    if (key !== undefined && locked.has(key)) found.push(file);
  }
  return found;
}

let _cached: { readonly at: number; readonly text: Promise<string> } | undefined;

/** /proc/locks, read at most once a second: `list` asks for every project. */
function _locksText(): Promise<string> {
  const now = Date.now();
  if (_cached === undefined || now - _cached.at > 1000) {
    _cached = { at: now, text: readProcFile(procLocks).then((text) => text ?? "") };
  }
  return _cached.text;
}

/**
 * The PIDs of QEMU processes whose command line names one of `files`, for
 * messages and for stopping a VM that another tool started.
 */
export async function qemuProcessesUsing(files: readonly string[]): Promise<number[]> {
  const { stdout } = await runTool("ps", ["-e", "-ww", "-o", "pid=,args="], {
    allowFailure: true,
    maxCapture: 4 << 20,
    missingHint: "Install procps (it provides ps).",
  });
  const pids: number[] = [];
  for (const line of stdout.split("\n")) {
    const match = /^\s*(\d+)\s+(\S*qemu-system-\S*)(.*)$/.exec(line);
    if (match && files.some((file) => match[3].includes(file))) pids.push(Number(match[1]));
  }
  // Only the live ones: ps lists zombies too.
  const live = await findProcesses(pids);
  return pids.filter((pid) => live.has(pid));
}
