/**
 * Who owns a running QEMU: a transient systemd user unit when a user
 * manager is reachable, otherwise QEMU itself, daemonized (setsid, a
 * pidfile). Both launch QEMU with a pidfile, so "is it running" is decided
 * the same way for both (see `runtime_state.ts`); they differ in how QEMU
 * is launched, forced to stop, and how its log is read.
 *
 * @module
 */
import type { Environment, SupervisorKind } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { QmpClient } from "./qmp.ts";
import { runTool } from "../store/process.ts";
import type { RuntimeRecord } from "./runtime_state.ts";
import type { Reporter } from "../store/reporter.ts";
import type { ProjectPaths } from "../store/store.ts";
import { appendVmLog } from "./vm_log.ts";

/** The QEMU binary. */
export const qemuProgram = "qemu-system-x86_64";

const _qemuHint = "Install QEMU: 'pacman -S qemu-base' (Arch) or 'apt install qemu-system-x86' (Debian).";

/** Exit codes of a failed launch, shared by `start`. */
export const LaunchExit = { portRace: 8, failed: 12 } as const;

/** What a launch needs. */
export interface Launch {
  readonly paths: ProjectPaths;
  /** QEMU's arguments, without `-pidfile` or `-daemonize`. */
  readonly qemuArgs: readonly string[];
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
   * Launches QEMU and resolves once it has initialised, i.e. bound its
   * port and sockets.
   *
   * @throws {VirtdevError} exit 8 when the port was taken meanwhile, 12
   *   when QEMU fails otherwise.
   */
  launch(launch: Launch): Promise<void>;
  /** Asks for QEMU to end now (SIGTERM). */
  terminate(paths: ProjectPaths, pid: number, record: RuntimeRecord | undefined): Promise<void>;
  /** Forgets a VM that has ended. */
  release(record: RuntimeRecord | undefined): Promise<void>;
  /** The program and arguments that show the VM's log, or `undefined` for vm.log. */
  logCommand(project: string, options: { readonly follow: boolean }): readonly string[] | undefined;
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
  } catch {
    // systemctl is not installed.
    return processSupervisor;
  }
}

/** Turns QEMU's complaint into the right error. */
function _launchError(launch: Launch, detail: string, code: number | string): VirtdevError {
  if (/host forwarding rule|Could not set up host forwarding|Address already in use/i.test(detail)) {
    return new VirtdevError(`Port ${launch.port} was taken before QEMU could bind it.`, {
      exitCode: LaunchExit.portRace,
      hint: launch.explicitPort
        ? "Retry with another port, or leave the port out."
        : "Retry; virtdev will choose another port.",
    });
  }
  return new VirtdevError(`QEMU failed to start (${code}).${detail ? `\n${detail}` : ""}`, {
    exitCode: LaunchExit.failed,
    hint: `See 'virtdev log ${launch.paths.name}' and ${launch.paths.consoleLog}.`,
  });
}

/** QEMU daemonizes itself: it forks, calls setsid, writes its pidfile, and its parent exits once it is initialised. */
export const processSupervisor: Supervisor = {
  kind: "process",
  unitFor: () => undefined,
  async launch(launch) {
    const args = [...launch.qemuArgs, "-daemonize", "-pidfile", launch.paths.runtime.pidFile];
    await appendVmLog(launch.paths, `start: ${qemuProgram} ${args.join(" ")}`);
    const result = await runTool(qemuProgram, args, { allowFailure: true, missingHint: _qemuHint });
    const detail = result.stderr.trim();
    if (detail) await appendVmLog(launch.paths, detail.split("\n").map((line) => `qemu: ${line}`));
    if (result.code !== 0) {
      await appendVmLog(launch.paths, `start failed: QEMU exit ${result.code}`);
      throw _launchError(launch, detail, `exit ${result.code}`);
    }
  },
  async terminate(_paths, pid) {
    // kill(1), not Deno.kill: Deno grants signals only with an unscoped --allow-run.
    // A process that is already gone is what we wanted.
    await runTool("kill", ["-TERM", String(pid)], {
      allowFailure: true,
      missingHint: "Install procps (it provides kill).",
    });
  },
  release: () => Promise.resolve(),
  logCommand: () => undefined,
};

/** The systemd-run arguments that run `qemuArgs` as transient user unit `unit`. */
export function systemdRunArguments(unit: string, project: string, qemuArgs: readonly string[]): string[] {
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
    qemuProgram,
    ...qemuArgs,
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
    }).catch(() => undefined);
    if (launch.user && linger?.stdout.trim() !== "yes") {
      launch.reporter.warn(
        `lingering is not enabled for ${launch.user}: the VM stops when you log out. Keep it with: sudo loginctl enable-linger ${launch.user}`,
      );
    }
    const args = [...launch.qemuArgs, "-pidfile", launch.paths.runtime.pidFile];
    await appendVmLog(launch.paths, `start (systemd unit ${unit}): ${qemuProgram} ${args.join(" ")}`);
    await runTool("systemd-run", systemdRunArguments(unit, launch.paths.name, args), {
      missingHint: "Install systemd, or set VIRTDEV_SUPERVISOR=process.",
    });
    // The unit is active as soon as QEMU is exec'd; QEMU answers QMP only
    // once it has initialised, which includes binding the forwarded port.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        (await QmpClient.connect(launch.paths.runtime.qmpSocket)).close();
        return;
      } catch {
        // Not listening yet.
      }
      const state = (await runTool("systemctl", ["--user", "show", unit, "--property=ActiveState", "--value"], {
        allowFailure: true,
      })).stdout.trim();
      if (state === "failed" || state === "inactive" || Date.now() > deadline) {
        const journal = await runTool("journalctl", ["--user", "-u", unit, "--no-hostname", "-n", "20", "-o", "cat"], {
          allowFailure: true,
        }).catch(() => undefined);
        throw _launchError(launch, journal?.stdout.trim() ?? "", `unit ${state || "unknown"}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  },
  async terminate(_paths, _pid, record) {
    await runTool("systemctl", ["--user", "stop", record?.unit ?? ""], { allowFailure: true });
  },
  async release(record) {
    if (record?.unit) await runTool("systemctl", ["--user", "reset-failed", record.unit], { allowFailure: true });
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
