/**
 * Reaching a running guest: the checks every SSH-based command makes, and
 * `wait`, which blocks until the guest accepts an authenticated login.
 *
 * @module
 */
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { requireVmPaths } from "../projects/project_lookup.ts";
import { guestReadiness, inspectVm, type RuntimeRecord, type VmStatus } from "../vm/runtime_state.ts";
import {
  isHostKeyFailure,
  isKeyRefused,
  projectSshTarget,
  sshArguments,
  sshControlRequest,
  type SshTarget,
} from "./ssh.ts";
import { requireKey } from "./ssh_key.ts";
import type { ProjectPaths, Store } from "../store/store.ts";
import { readAgentState } from "../vm/agent_state.ts";
import { haltHints, readHaltRecord, type VmHalt } from "../vm/vm_halt.ts";
import { appendVmLog } from "../vm/vm_log.ts";
import { formatTimeline } from "../vm/boot_timeline.ts";
import { consoleTailLines } from "../vm/console_log.ts";
import { stripTerminalControls } from "./terminal_text.ts";

/** Exit codes of `wait`. */
export const WaitExit = {
  exited: 6,
  timeout: 7,
  hostKeyMismatch: 8,
  sshFailed: 9,
  keyRefused: 10,
  networkLost: 11,
  halted: 12,
} as const;

function _haltError(name: string, halt: VmHalt): VirtdevError {
  return new VirtdevError(`Project ${name}'s guest stopped running: ${halt.reason}.`, {
    exitCode: WaitExit.halted,
    hint: haltHints(halt, name),
  });
}

/** A running project and how to reach it. */
export interface RunningGuest {
  readonly paths: ProjectPaths;
  readonly status: VmStatus;
  readonly target: SshTarget;
}

/**
 * Checks that project `name` exists, its VM runs and the user's key is
 * usable, and says how to reach it.
 *
 * @throws {VirtdevError} exit 3 for no project, `notRunningCode` when the
 *   VM is not running, 77/78 for the key.
 */
export async function requireRunningGuest(
  store: Store,
  name: string,
  options: { readonly config: Pick<Config, "sshKey">; readonly notRunningCode: number },
): Promise<RunningGuest> {
  const { paths, status, record } = await requireRunningVm(store, name, options.notRunningCode);
  await requireKey(options.config.sshKey);
  return {
    paths,
    status,
    target: projectSshTarget(paths, { port: record.port, identity: options.config.sshKey }),
  };
}

/** A project whose VM lives, with its launch record. */
export interface RunningVm {
  readonly paths: ProjectPaths;
  readonly status: VmStatus & { readonly pid: number };
  readonly record: RuntimeRecord;
}

/**
 * Checks that project `name` exists and its VM lives.
 *
 * @throws {VirtdevError} exit 3 for no project, `notRunningCode` otherwise.
 */
export async function requireRunningVm(store: Store, name: string, notRunningCode: number): Promise<RunningVm> {
  const paths = await requireVmPaths(store, name);
  const status = await inspectVm(paths);
  if (status.pid === undefined || status.record === undefined) {
    throw new VirtdevError(`Project ${name} is ${status.state === "suspended" ? "suspended" : "not running"}.`, {
      exitCode: notRunningCode,
      hint: `${
        status.state === "suspended" ? "Resume" : "Start"
      } it with 'virtdev start ${name}', then 'virtdev wait ${name}'.`,
    });
  }
  return { paths, status: { ...status, pid: status.pid }, record: status.record };
}

/**
 * Waits until project `name`'s guest has said it is ready on its serial
 * console and then accepts one authenticated `ssh true`. The host agent
 * notes the readiness line in `run/agent.json`; that small directory is
 * watched, the console log is never read, and SSH is not polled while the
 * guest boots.
 *
 * @returns the seconds waited.
 */
export async function waitForGuest(
  store: Store,
  name: string,
  options: { readonly config: Pick<Config, "sshKey" | "waitTimeout"> },
): Promise<{
  readonly port: number;
  readonly seconds: number;
  /** After a resume: whether the guest's clock was set from the host's. */
  readonly clock?: { readonly set: boolean; readonly detail?: string };
}> {
  const started = performance.now();
  const guest = await requireRunningGuest(store, name, { config: options.config, notRunningCode: WaitExit.exited })
    .catch(async (error) => {
      // A boot that QEMU ended itself: its reason, not merely "not running".
      const halt = error instanceof VirtdevError && error.exitCode === WaitExit.exited
        ? await readHaltRecord(store.project(name))
        : undefined;
      if (!halt) throw error;
      throw _haltError(name, halt);
    });
  const deadline = Date.now() + options.config.waitTimeout * 1000;
  // run/, not the project directory: the disks beside it change all the time.
  const watcher = Deno.watchFs(guest.paths.runDir, { recursive: false });
  const changes = _changeSignal(watcher);
  try {
    let retry = 50;
    let lastSshFailure: string | undefined;
    for (;;) {
      const status = await inspectVm(guest.paths);
      const halt = status.halt ?? (status.state === "stopped" ? await readHaltRecord(guest.paths) : undefined);
      if (halt) throw _haltError(name, halt);
      if (status.state === "stopped" || status.state === "stopping") {
        throw new VirtdevError(
          `Project ${name}'s VM ${status.state === "stopped" ? "exited" : "is stopping"} before SSH became available.`,
          {
            exitCode: WaitExit.exited,
            hint: [
              `See its console log: ${guest.paths.consoleLog}, and 'virtdev log ${name}'.`,
              ...await _consoleTail(guest.paths),
            ],
          },
        );
      }
      if (status.state === "degraded") {
        throw new VirtdevError(
          `Project ${name}'s network is gone: its passt process or its egress filter has died (see 'virtdev log ${name}').`,
          {
            exitCode: WaitExit.networkLost,
            hint: `Restart the VM: virtdev stop ${name} && virtdev start ${name}`,
          },
        );
      }
      if (Date.now() > deadline) {
        throw new VirtdevError(`Project ${name} did not become reachable within ${options.config.waitTimeout}s.`, {
          exitCode: WaitExit.timeout,
          hint: [
            `Raise VIRTDEV_WAIT_TIMEOUT, or look at the console: virtdev console ${name}`,
            ...(lastSshFailure === undefined
              ? await _consoleTail(guest.paths)
              : [`The guest said it was ready, but SSH logins kept failing; the last said: ${lastSshFailure}`]),
          ],
        });
      }
      const readiness = await guestReadiness(guest.paths);
      if (readiness === "failed") {
        throw new VirtdevError(`Project ${name}'s guest reports that its SSH server failed to start.`, {
          exitCode: WaitExit.sshFailed,
          hint: [
            `Look inside with 'virtdev console ${name}' (the console logs in as dev):`,
            "  sudo systemctl status ssh virtdev-identity; sudo journalctl -b -u ssh",
          ],
        });
      }
      if (readiness === "ready") {
        // After a resume the host agent has just logged in (the same key, the pinned host key) to set
        // the clock: that login is the proof, and under TCG each SSH handshake costs about a second.
        const agent = await readAgentState(guest.paths);
        if (agent?.clock?.set) {
          await _logLogin(guest.paths);
          break;
        }
        // After a cold boot the agent logged in at the ready line and holds that connection: while it
        // lives, it is the proof (a reboot inside the guest ends it, and this logs in itself).
        if (agent?.login?.ok && await sshControlRequest(guest.target, "check")) {
          await _logLogin(guest.paths);
          break;
        }
        const result = await runTool("ssh", sshArguments(guest.target, ["true"], { batch: true }), {
          allowFailure: true,
        });
        if (result.code === 0) {
          await _logLogin(guest.paths);
          break;
        }
        if (isHostKeyFailure(result.stderr)) {
          throw new VirtdevError(
            `Project ${name}'s guest presented an SSH host key other than the one pinned for it.`,
            {
              exitCode: WaitExit.hostKeyMismatch,
              hint: [
                "Something other than this project's VM may be answering on its port; virtdev refuses to log in.",
                `The pinned key is in ${guest.paths.knownHosts}.`,
              ],
            },
          );
        }
        if (isKeyRefused(result.stderr)) {
          throw new VirtdevError(`Project ${name}'s guest refuses your key.`, {
            exitCode: WaitExit.keyRefused,
            hint: [
              "Is /home mounted and /home/dev/.ssh/authorized_keys in place? Look with 'virtdev console " + name + "'.",
              "The base must have been installed with the key at VIRTDEV_SSH_KEY.",
            ],
          });
        }
        // sshd is restarting or not yet listening: try again shortly.
        lastSshFailure = _lastLine(result.stderr, result.code);
        await changes.next(retry);
        retry = Math.min(retry * 2, 1000);
      } else {
        // The agent's note of the ready line (a rename in run/) wakes this
        // at once; the slow tick only looks for a VM that died unseen.
        // Each look costs a process (ps), and without KVM every process
        // the host runs during the boot is time the guest does not get.
        await changes.next(Math.max(0, Math.min(_idleLookMs, deadline - Date.now() + 1)));
      }
    }
  } finally {
    watcher.close();
  }
  const clock = (await readAgentState(guest.paths))?.clock;
  return { port: guest.target.port, seconds: (performance.now() - started) / 1000, ...(clock ? { clock } : {}) };
}

/** How often `wait` looks at a booting VM when nothing in run/ changed. */
const _idleLookMs = 5000;

/** Adds the first login of this boot to the timeline in vm.log. */
async function _logLogin(paths: ProjectPaths): Promise<void> {
  const started = (await readAgentState(paths))?.qemuStartedAt;
  if (started !== undefined) {
    await appendVmLog(paths, formatTimeline([{ name: "ssh login", seconds: (Date.now() - started) / 1000 }]));
  }
}

/** Resolves on the next change in a watched directory, or after `ms`. */
function _changeSignal(watcher: Deno.FsWatcher): { next(ms: number): Promise<void> } {
  let wake: (() => void) | undefined;
  let pending = false;
  (async () => {
    try {
      for await (const _event of watcher) {
        pending = true;
        wake?.();
      }
    } catch {
      // Closed.
    }
  })();
  return {
    next(ms) {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done(): void {
          clearTimeout(timer);
          wake = undefined;
          pending = false;
          resolve();
        }
        wake = done;
      });
    },
  };
}

/** The last line of an SSH failure, safe to print. */
function _lastLine(stderr: string, code: number): string {
  const line = _printable(stderr.trim().split("\n").at(-1) ?? "");
  return line === "" ? `exit ${code}` : line;
}

/** One line from the guest's side, stripped of control sequences and cut to a line's width. */
function _printable(line: string): string {
  const text = stripTerminalControls(line).trim();
  return text.length > 150 ? `${text.slice(0, 150)}…` : text;
}

/**
 * The console's last lines, for a boot that went nowhere: read from the
 * end within a fixed size, stripped of the guest's control sequences and
 * cut to a line's width.
 */
async function _consoleTail(paths: ProjectPaths): Promise<string[]> {
  const lines = (await consoleTailLines(paths.consoleLog, { lines: 6, maxBytes: 4096 })).map((line) =>
    `  ${line.length > 150 ? `${line.slice(0, 150)}…` : line}`
  );
  return lines.length === 0 ? [] : ["The console's last lines:", ...lines];
}
