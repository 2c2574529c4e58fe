/**
 * Who owns a running VM: a transient systemd user unit when a user manager
 * is reachable, otherwise a detached process of virtdev's own. Either way
 * the process they run is the host agent (`host_agent.ts`), which starts
 * QEMU as its child and keeps its console; both launch QEMU with a
 * pidfile, so "is it running" is decided the same way for both (see
 * `runtime_state.ts`). They differ in how the agent is launched, how it is
 * forced to stop, and how its log is read.
 *
 * @module
 */
import type { Environment, SupervisorKind } from "../store/config.ts";
import { ExitCode, ToolError, VirtdevError } from "../store/errors.ts";
import { runTool, spawnDetached } from "../store/process.ts";
import { signalProcess } from "../store/processes.ts";
import type { RuntimeRecord } from "./runtime_state.ts";
import type { Reporter } from "../store/reporter.ts";
import type { ProjectPaths } from "../store/store.ts";
import { hostAgentArgument, netFilterArgument } from "./host_agent_argument.ts";
import { readAgentState } from "./agent_state.ts";
import { appendVmLog } from "./vm_log.ts";

/** The QEMU binary. */
export const qemuProgram = "qemu-system-x86_64";

/** QEMU's `--version` first line: a migration stream is only sure to load into the QEMU that wrote it. */
export async function qemuVersionLine(): Promise<string> {
  const result = await runTool(qemuProgram, ["--version"]);
  return result.stdout.split("\n", 1)[0].trim();
}

/** How to install QEMU, for hints. */
export const qemuInstallHint = "Install QEMU: 'pacman -S qemu-base' (Arch) or 'apt install qemu-system-x86' (Debian).";

/** Exit codes of a failed launch, shared by `start`. */
export const LaunchExit = { toolMissing: 69, portRace: 8, failed: 12 } as const;

/** What the host agent runs: QEMU (through sh for a resume, `qemu_launch.ts`), passt, and ssh for forwards. */
function _agentPrograms(): string[] {
  return [qemuProgram, "sh", "passt", "setpriv", "ssh", netFilterProgram()];
}

/** How long a launch may take before it counts as failed. */
const _launchTimeoutMs = 90_000;

/** What a launch needs. The runtime record, already written, holds QEMU's command line. */
export interface Launch {
  readonly paths: ProjectPaths;
  /** The forwarded port, to explain a bind failure. */
  readonly port: number;
  /** Whether the port was asked for explicitly. */
  readonly explicitPort: boolean;
  /** Where warnings go. */
  readonly reporter: Reporter;
  /** The user, for systemd's linger check. */
  readonly user: string | undefined;
}

/** One supervisor implementation. */
export interface Supervisor {
  readonly kind: RuntimeRecord["supervisor"];
  /** The systemd unit for `project`, if this supervisor uses one. */
  unitFor(project: string): string | undefined;
  /**
   * Launches the host agent and resolves once its QEMU has initialised,
   * i.e. bound its port and sockets.
   *
   * @throws {VirtdevError} exit 8 when the port was taken meanwhile, 69
   *   when QEMU is missing, 12 when the launch fails otherwise.
   */
  launch(launch: Launch): Promise<void>;
  /** Asks for QEMU to end now (SIGTERM). */
  terminate(paths: ProjectPaths, pid: number, record: RuntimeRecord | undefined): Promise<void>;
  /** Ends QEMU at once (SIGKILL), for one that outlived its SIGTERM. */
  kill(pid: number, record: RuntimeRecord | undefined): Promise<void>;
  /** Forgets a VM that has ended. */
  release(record: RuntimeRecord | undefined): Promise<void>;
  /** The program and arguments that show the VM's log, or `undefined` for vm.log. */
  logCommand(project: string, options: { readonly follow: boolean }): readonly string[] | undefined;
}

/**
 * The command that runs this virtdev as the host agent of the project in
 * `paths`: the compiled binary itself, or Deno with this script and only
 * what the agent needs (the project directory, `programs`, and its three
 * unix sockets: QMP, the console, and the name the console is first bound
 * to).
 */
export function hostAgentCommand(
  paths: ProjectPaths,
  programs: readonly string[],
  options: { readonly runBy: "virtdev" | "systemd" },
): { program: string; args: string[] } {
  const listening = hostAgentListeningPath(paths, crypto.randomUUID().slice(0, 8));
  const agentArgs = [hostAgentArgument, paths.dir, listening];
  if (Deno.build.standalone) {
    // The binary may live anywhere, so its permissions cannot name it:
    // they name /proc/self/exe, which is this executable when virtdev runs
    // it. systemd runs the agent itself and needs the real path.
    return { program: options.runBy === "systemd" ? Deno.execPath() : "/proc/self/exe", args: agentArgs };
  }
  // Its unix sockets, and loopback for the forwards it keeps.
  const net = [
    ...[paths.runtime.qmpSocket, paths.runtime.qmpWatchSocket, paths.runtime.consoleSocket, listening].map((s) =>
      `unix:${s}`
    ),
    "127.0.0.1",
  ];
  return _fromSource([
    `--allow-read=${paths.dir}`,
    `--allow-write=${paths.dir}`,
    `--allow-net=${net.join(",")}`,
    `--allow-run=${programs.join(",")}`,
  ], agentArgs);
}

/** This virtdev's agent script run by Deno with `permissions` and `args`. */
function _fromSource(permissions: readonly string[], args: readonly string[]): { program: string; args: string[] } {
  // The agent and the filter import no packages: without the config Deno
  // starts them in a sixth of the time.
  return {
    program: _selfOr("deno"),
    args: ["run", "--no-prompt", "--no-config", ...permissions, _agentScript(), ...args],
  };
}

/**
 * The command that runs this virtdev as the egress filter of the project
 * in `paths` (see `egress/net_filter.ts`): like the agent's, with what the
 * filter needs: its directory, the blocked log, the host's resolver
 * configuration and network interfaces, and the network (its unix
 * sockets, and UDP to the host's resolvers, which may be anywhere).
 */
export function netFilterCommand(paths: ProjectPaths, blockedLog: string): { program: string; args: string[] } {
  const netDir = paths.runtime.network;
  const filterArgs = [netFilterArgument, netDir, blockedLog];
  if (Deno.build.standalone) return { program: Deno.execPath(), args: filterArgs };
  return _fromSource([
    `--allow-read=${paths.dir},/etc/resolv.conf`,
    `--allow-write=${paths.dir}`,
    "--allow-net",
    "--allow-sys=networkInterfaces",
  ], filterArgs);
}

/** The program the host agent may run to start the egress filter. */
export function netFilterProgram(): string {
  return Deno.build.standalone ? Deno.execPath() : _selfOr("deno");
}

/**
 * The program that runs the agent from source or the bundle: this Deno,
 * when virtdev may run it by its path; otherwise `name` from PATH, which
 * `--allow-run` names (the two differ when PATH holds a symlink to it).
 */
function _selfOr(name: string): string {
  const self = Deno.execPath();
  return Deno.permissions.querySync({ name: "run", command: self }).state === "granted" ? self : name;
}

/**
 * The script the agent runs: from source its own entry beside `main.ts`
 * (no package is loaded, so Deno needs no configuration); otherwise the
 * bundle, which holds everything.
 */
function _agentScript(): string {
  const main = new URL(Deno.mainModule).pathname;
  return main.endsWith("/src/main.ts") ? main.replace(/main\.ts$/, "host_agent_main.ts") : main;
}

/** The name the host agent first binds its console socket to (see `host_agent.ts`). */
export function hostAgentListeningPath(paths: ProjectPaths, token: string): string {
  return `${paths.runDir}/console.${token}.sock`;
}

/** Turns the agent's report of QEMU's complaint into the right error. */
function _launchError(launch: Launch, detail: string, what: string): VirtdevError {
  // QEMU's words for SLIRP, passt's for passt.
  if (
    /host forwarding rule|Could not set up host forwarding|Address already in use|Failed to bind any port/i.test(detail)
  ) {
    return new VirtdevError(`Port ${launch.port} was taken before it could be bound.`, {
      exitCode: LaunchExit.portRace,
      hint: launch.explicitPort
        ? "Retry with another port, or leave the port out."
        : "Retry; virtdev will choose another port.",
    });
  }
  if (/is not installed or not on PATH/.test(detail)) {
    return new VirtdevError(detail, { exitCode: LaunchExit.toolMissing, hint: qemuInstallHint });
  }
  return new VirtdevError(`QEMU failed to start (${what}).${detail ? `\n${detail}` : ""}`, {
    exitCode: LaunchExit.failed,
    hint: `See 'virtdev log ${launch.paths.name}' and ${launch.paths.consoleLog}.`,
  });
}

/**
 * Waits for the host agent's report: QEMU answers QMP, or the launch failed.
 * `gone` says whether the agent has ended without a report.
 */
async function _awaitLaunch(launch: Launch, gone: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + _launchTimeoutMs;
  let delay = 5;
  for (let round = 0;; round++) {
    const state = await readAgentState(launch.paths);
    if (state?.phase === "running") return;
    if (state?.phase === "failed") {
      throw _launchError(launch, state.error ?? "", "QEMU exited");
    }
    // Asking the supervisor costs a process for systemd: not every round.
    const ended = round % 10 === 9 ? await gone() : undefined;
    if (ended !== undefined) {
      const last = await readAgentState(launch.paths);
      if (last?.phase === "running") return;
      throw _launchError(launch, last?.error ?? "", ended);
    }
    if (Date.now() > deadline) throw _launchError(launch, "", `no answer within ${_launchTimeoutMs / 1000}s`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10);
  }
}

/** The supervisor a record names, for a VM already running. */
export function supervisorFor(record: RuntimeRecord | undefined): Supervisor {
  return record?.supervisor === "systemd" ? systemdSupervisor : processSupervisor;
}

/**
 * Picks the supervisor for a new start: `systemd` or `process` as
 * configured; `auto` uses systemd when a user manager answers.
 */
export async function chooseSupervisor(kind: SupervisorKind, env: Environment): Promise<Supervisor> {
  if (kind === "process") return processSupervisor;
  if (kind === "systemd") return systemdSupervisor;
  // Without a runtime directory there is no user manager to ask.
  if (!env.XDG_RUNTIME_DIR) return processSupervisor;
  try {
    const answer = await runTool("systemctl", ["--user", "show-environment"], { allowFailure: true });
    return answer.code === 0 ? systemdSupervisor : processSupervisor;
  } catch (error) {
    // systemctl is not installed.
    if (error instanceof ToolError && error.exitCode === ExitCode.toolMissing) return processSupervisor;
    throw error;
  }
}

/** The agent runs detached (setsid) as a process of the user's own. */
export const processSupervisor: Supervisor = {
  kind: "process",
  unitFor: () => undefined,
  async launch(launch) {
    const agent = hostAgentCommand(launch.paths, _agentPrograms(), { runBy: "virtdev" });
    await appendVmLog(launch.paths, `start: host agent ${agent.program} ${agent.args.join(" ")}`);
    const child = spawnDetached(agent.program, agent.args);
    let exited: number | undefined;
    child.exited.then((code) => exited = code);
    await _awaitLaunch(launch, () => Promise.resolve(exited === undefined ? undefined : `agent exit ${exited}`));
  },
  terminate: (_paths, pid) => signalProcess(pid, "TERM"),
  kill: (pid) => signalProcess(pid, "KILL"),
  release: () => Promise.resolve(),
  logCommand: () => undefined,
};

/** The systemd-run arguments that run `command` (the host agent) as transient user unit `unit`. */
export function systemdRunArguments(
  unit: string,
  project: string,
  command: { readonly program: string; readonly args: readonly string[] },
): string[] {
  // No --collect: a failed unit stays loaded so its status can be read;
  // start and stop call reset-failed instead.
  return [
    "--user",
    `--unit=${unit}`,
    `--description=virtdev project virtual machine: ${project}`,
    "--property=KillMode=mixed",
    "--property=TimeoutStopSec=30",
    "--quiet",
    "--",
    command.program,
    ...command.args,
  ];
}

/** A transient systemd user unit per project. */
export const systemdSupervisor: Supervisor = {
  kind: "systemd",
  unitFor: (project) => `virtdev-${project}`,
  async launch(launch) {
    const unit = `virtdev-${launch.paths.name}`;
    await runTool("systemctl", ["--user", "reset-failed", unit], { allowFailure: true });
    const linger = await runTool("loginctl", ["show-user", launch.user ?? "", "--property=Linger", "--value"], {
      allowFailure: true,
    }).catch((error) => {
      // No loginctl: no linger to check.
      if (error instanceof ToolError && error.exitCode === ExitCode.toolMissing) return undefined;
      throw error;
    });
    if (launch.user && linger?.stdout.trim() !== "yes") {
      launch.reporter.warn(
        `lingering is not enabled for ${launch.user}: the VM stops when you log out. Keep it with: sudo loginctl enable-linger ${launch.user}`,
      );
    }
    const agent = hostAgentCommand(launch.paths, _agentPrograms(), { runBy: "systemd" });
    await appendVmLog(
      launch.paths,
      `start (systemd unit ${unit}): host agent ${agent.program} ${agent.args.join(" ")}`,
    );
    await runTool("systemd-run", systemdRunArguments(unit, launch.paths.name, agent), {
      missingHint: "Install systemd, or set VIRTDEV_SUPERVISOR=process.",
    });
    await _awaitLaunch(launch, async () => {
      const state = await _unitState(unit);
      return _unitEnded(state) ? `unit ${state}` : undefined;
    });
  },
  async terminate(_paths, _pid, record) {
    await runTool("systemctl", ["--user", "stop", record?.unit ?? ""], { allowFailure: true });
  },
  async kill(pid, record) {
    if (record?.unit) {
      await runTool("systemctl", ["--user", "kill", "--signal=SIGKILL", record.unit], { allowFailure: true });
    }
    await signalProcess(pid, "KILL");
  },
  async release(record) {
    if (!record?.unit) return;
    // QEMU has exited, but the unit lives until the host agent has stopped
    // passt and written its last lines; a start made at once would find the
    // name taken. Wait for it (bounded), then end what is left.
    const deadline = Date.now() + _unitSettleMs;
    // An empty answer: systemctl could not say; nothing to wait for.
    const up = (state: string) => state !== "" && !_unitEnded(state);
    let state = await _unitState(record.unit);
    while (up(state) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = await _unitState(record.unit);
    }
    if (up(state)) {
      await runTool("systemctl", ["--user", "kill", "--signal=SIGKILL", record.unit], { allowFailure: true });
    }
    await runTool("systemctl", ["--user", "reset-failed", record.unit], { allowFailure: true });
  },
  logCommand: (project, { follow }) => [
    "journalctl",
    "--user",
    "-u",
    `virtdev-${project}`,
    "--no-hostname",
    ...(follow ? ["--follow"] : []),
  ],
};

/** How long a unit may take to end after its QEMU has exited. */
const _unitSettleMs = 10_000;

/** A user unit's ActiveState ("" when systemctl cannot say). */
async function _unitState(unit: string): Promise<string> {
  return (await runTool("systemctl", ["--user", "show", unit, "--property=ActiveState", "--value"], {
    allowFailure: true,
  })).stdout.trim();
}

/** Whether a unit in `state` has ended (an unknown unit shows as inactive). */
function _unitEnded(state: string): boolean {
  return state === "inactive" || state === "failed";
}
