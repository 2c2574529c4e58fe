/**
 * Whether a project's VM runs, decided in one place from the process table
 * rather than from files that a crash can leave behind: QEMU's pidfile
 * names a process, and that process must be our QEMU (its command line
 * carries this project's pidfile), so a reused PID never counts.
 *
 * @module
 */
import type { ShutdownWatch } from "./shutdown_proof.ts";
import type { QemuCommand } from "./qemu_launch.ts";
import { findProcesses, isProcessAlive } from "../store/processes.ts";
import type { Egress, NetBackend, PasstLaunch } from "./network.ts";
import { readAgentState, type Readiness } from "./agent_state.ts";
import type { VmHalt } from "./vm_halt.ts";
import type { ProjectPaths, Store } from "../store/store.ts";
import { filesInUse } from "./disk_locks.ts";
import { pathExists, readOptionalText } from "../store/store.ts";

/**
 * The run state of a project VM. `degraded`: QEMU runs, but its network
 * (passt) has died, so the guest cannot be reached until a restart.
 * `suspended`: no QEMU runs, and the project holds its saved state
 * (`suspend.ts`), which the next start resumes.
 */
export type RunState = "running" | "starting" | "stopping" | "degraded" | "paused" | "suspended" | "stopped";

/** How a running VM was launched; written by `start` before QEMU runs. */
export interface RuntimeRecord {
  /** The supervisor that owns the QEMU process. */
  readonly supervisor: "process" | "systemd";
  /** The systemd unit, for the systemd supervisor. */
  readonly unit?: string;
  /** The forwarded SSH port. */
  readonly port: number;
  /** When the VM was started (ISO 8601). */
  readonly startedAt: string;
  /** What the host agent runs: QEMU and its arguments (without `-pidfile`). */
  readonly qemu?: QemuCommand;
  /** The cap on the console log, in bytes. */
  readonly consoleLogBytes?: number;
  /** The network of this boot. */
  readonly network?: { readonly backend: NetBackend; readonly egress: Egress; readonly filtered?: boolean };
  /** passt, for the passt backend: the host agent starts it before QEMU. */
  readonly passt?: PasstLaunch;
  /** The egress filter between QEMU and passt: the host agent starts it after passt. */
  readonly filter?: { readonly program: string; readonly args: readonly string[]; readonly netDir: string };
  /** How the host agent reaches the guest for forwards: the user's key. */
  readonly ssh?: { readonly identity: string };
  /** For the maintenance VM: the host agent records how the boot ends (`shutdown_proof.ts`). */
  readonly shutdownWatch?: ShutdownWatch;
  /** A disposable boot: every write went to overlays in run/, dropped at stop. */
  readonly ephemeral?: boolean;
  /**
   * A resume from the project's suspended state (QEMU loads it with
   * `-incoming`): the host agent consumes the state before the guest runs,
   * sets its clock, and takes its readiness from the suspend.
   */
  readonly resume?: {
    readonly readiness: Readiness;
    /** A disposable run from the project's warm image: the image is kept, not consumed. */
    readonly keep?: boolean;
  };
}

/** What is known of a project's VM. */
export interface VmStatus {
  readonly state: RunState;
  /** QEMU's PID while it lives. */
  readonly pid?: number;
  /** The launch record while the VM lives. */
  readonly record?: RuntimeRecord;
  /** Runtime files are present although no VM lives (a crash or a reboot). */
  readonly stale: boolean;
  /**
   * A QEMU runs on the project's disks that virtdev did not start (the
   * original tool's systemd unit, or one started by hand): `running (started
   * elsewhere)`. It has no PID or record here.
   */
  readonly foreign?: boolean;
  /** While `paused`: why QEMU stopped running the guest. */
  readonly halt?: VmHalt;
  /**
   * QEMU lives but its host agent does not (killed, or crashed): nothing
   * logs the console or serves it, keeps forwards or watches for a halt.
   */
  readonly agentGone?: boolean;
}

/**
 * Whether a command line (as `ps` shows it, arguments joined by spaces)
 * is the QEMU that writes `pidFile`.
 */
export function isOurQemu(args: string, pidFile: string): boolean {
  const program = args.split(" ", 1)[0];
  return /(^|\/)qemu-system-[^/ ]+$/.test(program) && `${args} `.includes(` -pidfile ${pidFile} `);
}

/** QEMU's PID when our QEMU for `paths` is alive. */
export async function livePid(paths: ProjectPaths): Promise<number | undefined> {
  const pid = _pidIn(await readOptionalText(paths.runtime.pidFile));
  if (pid === undefined) return undefined;
  return await isProcessOurQemu(pid, paths.runtime.pidFile) ? pid : undefined;
}

/** The PID a pidfile's text names, if it is one. */
function _pidIn(text: string | undefined): number | undefined {
  const pid = Number(text?.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether process `pid` is alive and is the QEMU that writes `pidFile`. */
export async function isProcessOurQemu(pid: number, pidFile: string): Promise<boolean> {
  const entry = (await findProcesses([pid])).get(pid);
  return entry !== undefined && isOurQemu(entry.args, pidFile);
}

/** Reads the launch record, if there is a readable one. */
export async function readRuntimeRecord(paths: ProjectPaths): Promise<RuntimeRecord | undefined> {
  const text = await readOptionalText(paths.runtime.record);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as RuntimeRecord;
    return typeof value.port === "number" ? value : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined; // half a record, from a crash
    throw error;
  }
}

/**
 * What the guest has said on its console since this boot began: SSH is up,
 * it failed, or nothing yet. The host agent remembers it as the console
 * streams past, so the console log is never read for it.
 */
export async function guestReadiness(paths: ProjectPaths): Promise<Readiness> {
  return (await readAgentState(paths))?.readiness ?? "pending";
}

/**
 * The state of `paths`' VM. A QEMU that virtdev did not start is found by
 * the locks QEMU holds on every image it opens (`locks`, the default; it
 * costs a process, /proc being out of Deno's reach); `hints` asks the
 * kernel only where the original tool's signs (its sockets in the project
 * directory) are there, for reports that must be quick (status, list).
 */
export async function inspectVm(
  paths: ProjectPaths,
  options: { readonly foreign?: "locks" | "hints" } = {},
): Promise<VmStatus> {
  // One look at the process table for QEMU and its host agent: status and list run this for every project.
  const recorded = _pidIn(await readOptionalText(paths.runtime.pidFile));
  const agent = await readAgentState(paths);
  const table = await findProcesses([recorded, agent?.pid].filter((value) => value !== undefined));
  const qemu = recorded === undefined ? undefined : table.get(recorded);
  const pid = qemu !== undefined && isOurQemu(qemu.args, paths.runtime.pidFile) ? recorded : undefined;
  if (pid === undefined) {
    // QEMU locks the images it opens, whoever started it.
    const look = options.foreign !== "hints" || await _originalToolSigns(paths);
    if (look && (await filesInUse([paths.systemImage, paths.homeImage, paths.nvram])).length > 0) {
      if (agent?.phase === "launching" && table.has(agent.pid)) return { state: "starting", stale: false };
      return { state: "running", stale: false, foreign: true };
    }
    let stale = false;
    for (const file of Object.values(paths.runtime)) {
      try {
        await Deno.lstat(file);
        stale = true;
        break;
      } catch (error) {
        // Absent, as it should be.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    return { state: await pathExists(paths.suspended) ? "suspended" : "stopped", stale };
  }
  const record = await readRuntimeRecord(paths);
  const stopper = Number((await readOptionalText(paths.runtime.stopping))?.trim());
  if (Number.isSafeInteger(stopper) && stopper > 0 && await isProcessAlive(stopper)) {
    return { state: "stopping", pid, record, stale: false };
  }
  const gone = agent !== undefined && !table.has(agent.pid) ? { agentGone: true } : {};
  if (agent?.halt) return { state: "paused", pid, record, stale: false, halt: agent.halt, ...gone };
  if (agent?.network === "lost") return { state: "degraded", pid, record, stale: false, ...gone };
  const state = (agent?.readiness ?? "pending") === "pending" ? "starting" : "running";
  return { state, pid, record, stale: false, ...gone };
}

/** Whether the original tool's runtime sockets are in the project directory (it keeps them there, not in run/). */
async function _originalToolSigns(paths: ProjectPaths): Promise<boolean> {
  for (const name of ["monitor.sock", "console.sock"]) {
    try {
      await Deno.lstat(`${paths.dir}/${name}`);
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return false;
}

/** The state as people read it: `running (started elsewhere)` for a VM virtdev did not start. */
export function describeRunState(status: VmStatus): string {
  if (status.agentGone) {
    return `${status.state} (no host agent: console not logged; 'virtdev stop' then 'start' restores it)`;
  }
  if (status.halt) return `${status.state} (${status.halt.reason})`;
  return status.foreign ? `${status.state} (started elsewhere)` : status.state;
}

/** The run state of project `name`. */
export async function projectRunState(store: Store, name: string): Promise<RunState> {
  return (await inspectVm(store.project(name))).state;
}

/** Removes every runtime file of `paths`, and `run/` once empty. Call only when no VM lives. */
export async function clearRuntime(paths: ProjectPaths): Promise<void> {
  // Recursive for passt's directory (its socket and log).
  for (const file of Object.values(paths.runtime)) {
    // A process that has not quite ended (passt, the filter) may still add a file: one more try then.
    for (let attempt = 1;; attempt++) {
      try {
        await Deno.remove(file, { recursive: true });
        break;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) break;
        if ((error as { code?: string }).code !== "ENOTEMPTY" || attempt === 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  await Deno.remove(paths.runDir).catch((error) => {
    // Something else is in it (a file of a newer virtdev, or left by hand): keep it.
    if (!(error instanceof Deno.errors.NotFound) && (error as { code?: string }).code !== "ENOTEMPTY") throw error;
  });
}
