/**
 * What the process table says about PIDs. Deno grants reads of /proc/<pid>
 * only with --allow-all, so `ps` (procps, present on every Linux desktop)
 * is asked instead.
 *
 * @module
 */
import { runTool } from "./process.ts";

/** One live process. */
export interface ProcessEntry {
  readonly pid: number;
  /** Its parent's PID. */
  readonly ppid: number;
  /** The command line, its arguments joined by spaces. */
  readonly args: string;
}

/** The live (non-zombie) processes among `pids`. */
export async function findProcesses(pids: readonly number[]): Promise<Map<number, ProcessEntry>> {
  const valid = pids.filter((pid) => Number.isSafeInteger(pid) && pid > 0);
  if (valid.length === 0) return new Map();
  return await _ps(["-p", valid.join(",")]);
}

/** Every live (non-zombie) process, with its parent. */
export async function processTable(): Promise<Map<number, ProcessEntry>> {
  return await _ps(["-e"]);
}

async function _ps(select: readonly string[]): Promise<Map<number, ProcessEntry>> {
  // ps exits 1 when none of the PIDs exists.
  const { stdout } = await runTool("ps", ["-ww", ...select, "-o", "pid=,ppid=,stat=,args="], {
    allowFailure: true,
    missingHint: "Install procps (it provides ps).",
  });
  const found = new Map<number, ProcessEntry>();
  for (const line of stdout.split("\n")) {
    const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (match && !match[3].startsWith("Z")) {
      found.set(Number(match[1]), { pid: Number(match[1]), ppid: Number(match[2]), args: match[4] });
    }
  }
  return found;
}

/** Whether process `pid` is alive (a zombie is not). */
export async function isProcessAlive(pid: number): Promise<boolean> {
  return (await findProcesses([pid])).has(pid);
}

/**
 * Sends `signal` to `pid`; a process that is already gone is what was
 * wanted. Through kill(1): Deno grants signals only with an unscoped
 * --allow-run, which virtdev does not ask for.
 */
export async function signalProcess(pid: number, signal: "TERM" | "KILL" | "HUP" | "USR1"): Promise<void> {
  await runTool("kill", [`-${signal}`, String(pid)], {
    allowFailure: true,
    missingHint: "Install procps (it provides kill).",
  });
}
