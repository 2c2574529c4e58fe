/**
 * Suspending a project's VM: the guest is paused, QEMU writes its memory
 * and device state (a migration stream, in which zero pages are a flag
 * each) into the project, and QEMU and its helpers end. `start` resumes it
 * (see `vm_lifecycle.ts` and the host agent).
 *
 * Why a migration to `exec:cat > FILE` rather than `savevm`: it works on
 * QEMU 7.2 (no `file:` URI there), it needs no change to the project's
 * formats (`savevm` needs every writable disk in qcow2, and the nvram is
 * raw pflash), and the state is one file beside the deltas, which is easy
 * to fingerprint and to delete once consumed.
 *
 * A suspend killed half way is undone by the host agent, which guards the
 * pause (see `host_agent.ts`): before the state is committed the guest is
 * let run again, after it QEMU is ended. Never is a partial state used.
 *
 * @module
 */
import { ensurePrivateDirectory, privateFileMode } from "../store/file_modes.ts";
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import type { Reporter } from "../store/reporter.ts";
import { shellQuote } from "../store/shell_quote.ts";
import { pathExists, type ProjectPaths, type Store } from "../store/store.ts";
import { crashPoint } from "../store/crash_point.ts";
import { requireProject } from "../projects/project_lookup.ts";
import { projectSshTarget, sshArguments, sshControlRequest, type SshTarget } from "../guest/ssh.ts";
import { armGuestClockCommand } from "../guest/guest_clock.ts";
import { readAgentState } from "./agent_state.ts";
import { QmpClient } from "./qmp.ts";
import { inspectVm, type VmStatus } from "./runtime_state.ts";
import { type Config, resolveFirmware } from "../store/config.ts";
import {
  commitSuspendState,
  fingerprintOf,
  partialSuspendFiles,
  removePartialSuspend,
  type SavedKind,
  type SuspendFiles,
  type SuspendRecord,
} from "./suspend_state.ts";
import { join } from "../store/path.ts";
import { copyReflinked } from "../store/reflink_copy.ts";
import { settleEndedVm, waitForQemuExit } from "./vm_lifecycle.ts";
import { qemuVersionLine } from "./supervisor.ts";
import { appendVmLog } from "./vm_log.ts";

/** Exit codes of `suspend`. */
export const SuspendExit = {
  notRunning: 4,
  /** A VM that cannot be suspended as it is: disposable, paused by QEMU, started elsewhere, still launching. */
  cannotSuspend: 5,
  /** QEMU could not write the state; the guest runs on. */
  failed: 7,
} as const;

/** What a suspend did. */
export interface SuspendResult {
  readonly seconds: number;
  readonly memoryBytes: number;
  /** What the guest held of its memory (see {@link SuspendRecord}), when it could be asked. */
  readonly guestHeldBytes?: number;
  /** The VM's configured memory. */
  readonly configuredBytes?: number;
  /** Already suspended: nothing was done. */
  readonly already?: boolean;
}

/** Migration's default cap (128 MiB/s on QEMU 7.2) is meant for a live move over a network, not a local file. */
const _unlimitedBandwidth = 64 * 1024 ** 3;
/** How long the state may take to write before the suspend gives up and lets the guest run again. */
const _writeTimeoutMs = 300_000;

/** Suspends project `name`'s VM. Call under the store lock. */
export async function suspendProject(
  store: Store,
  name: string,
  options: { readonly config: Pick<Config, "sshKey" | "ovmfCode" | "ovmfVars">; readonly reporter: Reporter },
): Promise<SuspendResult> {
  const started = performance.now();
  const paths = await requireProject(store, name);
  const status = await inspectVm(paths);
  if (status.state === "suspended") return { seconds: 0, memoryBytes: 0, already: true };
  _checkSuspendable(paths, status);
  if (await pathExists(paths.suspended)) {
    // A state beside a running VM is older than what the disks hold now.
    throw new VirtdevError(`Project ${name} runs, but an old suspended state is still in ${paths.suspended}.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint: `Remove it by hand (rm -r ${shellQuote(paths.suspended)}); it can no longer be resumed.`,
    });
  }
  const pid = status.pid!;
  const record = status.record!;
  const agent = await readAgentState(paths);
  const readiness = agent?.readiness ?? "pending";
  // Writes the guest still holds reach its disks first, so a state thrown away later costs only memory.
  const target = projectSshTarget(paths, { port: record.port, identity: options.config.sshKey });
  const guestMemory = readiness === "ready" ? await _readyGuestForSave(target) : undefined;
  const configuredBytes = _configuredMemory(record.qemu?.args ?? []);
  const guestHeldBytes = configuredBytes === undefined || guestMemory === undefined
    ? undefined
    : Math.max(0, configuredBytes - guestMemory.free);
  // The VM ends with the save: its held login goes first (`ssh -O exit`, whoever holds it), so that the resumed guest
  // does not keep a session whose connection died with this passt (its sshd would drop it only 30 s on). The resume
  // makes a new one.
  await sshControlRequest(target, "exit");

  const memoryBytes = await _saveState(paths, {
    kind: "suspended",
    args: record.qemu?.args ?? [],
    firmwareCode: resolveFirmware(options.config).code,
    fields: {
      port: record.port,
      readiness,
      ...(guestMemory === undefined ? {} : { guestUsedBytes: guestMemory.used }),
      ...(guestHeldBytes === undefined ? {} : { guestHeldBytes }),
    },
    // Committed: QEMU has nothing left to do.
    after: async (client) => await client.execute("quit").catch(() => {}),
  });
  await waitForQemuExit(paths.runtime.pidFile, pid, 30_000);
  await settleEndedVm(paths, status, { agentPid: agent?.pid, reporter: options.reporter });
  const seconds = (performance.now() - started) / 1000;
  await appendVmLog(paths, `suspended: ${memoryBytes} bytes of state in ${seconds.toFixed(2)}s`);
  return {
    seconds,
    memoryBytes,
    ...(configuredBytes === undefined ? {} : { configuredBytes }),
    ...(guestHeldBytes === undefined ? {} : { guestHeldBytes }),
  };
}

/**
 * Makes project `name`'s warm image: the state of its running disposable
 * boot, once ready, with copies of that boot's overlays and nvram, in
 * `template/` (replacing the one before). The VM runs on afterwards.
 * Disposable runs then resume from it (see `vm_lifecycle.ts`) until the
 * project's disks change. Call under the store lock.
 */
export async function saveTemplate(
  store: Store,
  name: string,
  options: { readonly config: Pick<Config, "sshKey" | "ovmfCode" | "ovmfVars">; readonly reporter: Reporter },
): Promise<SuspendResult> {
  const started = performance.now();
  const paths = await requireProject(store, name);
  const status = await inspectVm(paths);
  _checkSuspendable(paths, status, { template: true });
  const record = status.record!;
  if ((await readAgentState(paths))?.readiness !== "ready") {
    throw new VirtdevError(`Project ${name}'s disposable boot is not ready yet.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint: `Wait for it first: virtdev wait ${name}`,
    });
  }
  // Each disposable run from the image then finds its clock armed.
  await _readyGuestForSave(projectSshTarget(paths, { port: record.port, identity: options.config.sshKey }));
  const overlays = paths.runtime.ephemeral;
  const memoryBytes = await _saveState(paths, {
    kind: "template",
    // The project's own disks are fingerprinted: the overlays lie over them, and an image is good while they are
    // unchanged.
    args: record.qemu?.args ?? [],
    firmwareCode: resolveFirmware(options.config).code,
    fields: { port: record.port, readiness: "ready" },
    // QEMU flushed the overlays and let go of them as the migration completed: copied as the state saw them.
    beforeCommit: async (files) =>
      await copyReflinked(["system.qcow2", "home.qcow2", "nvram"].map((name) => join(overlays, name)), files.dir),
    after: async (client) => await client.execute("cont"),
  });
  const seconds = (performance.now() - started) / 1000;
  await appendVmLog(
    paths,
    `saved a warm image for disposable runs: ${memoryBytes} bytes of state in ${seconds.toFixed(2)}s`,
  );
  return { seconds, memoryBytes };
}

/**
 * Pauses the guest and has QEMU write its state into a partial directory,
 * which is committed whole; `after` then ends QEMU or lets the guest run.
 * A failure before the commit lets the guest run again and removes the
 * partial state. The marker in run/ is locked throughout, for the host
 * agent's guard.
 *
 * @returns the state file's size.
 */
async function _saveState(
  paths: ProjectPaths,
  steps: {
    readonly kind: SavedKind;
    /** The command line the VM was launched with, and its firmware: part of the fingerprint. */
    readonly args: readonly string[];
    readonly firmwareCode: string;
    /** What the record says besides what every save writes. */
    readonly fields: Pick<SuspendRecord, "port" | "readiness" | "guestUsedBytes" | "guestHeldBytes">;
    readonly beforeCommit?: (files: SuspendFiles) => Promise<void>;
    readonly after: (client: QmpClient) => Promise<unknown>;
  },
): Promise<number> {
  const kind = { kind: steps.kind };
  const partial = partialSuspendFiles(paths, kind);
  await removePartialSuspend(paths, kind);
  await ensurePrivateDirectory(partial.dir);
  // Made here with its mode: QEMU's `cat >` keeps it.
  (await Deno.open(partial.memory, { write: true, createNew: true, mode: privateFileMode })).close();
  const token = crypto.randomUUID();
  // Held locked for as long as this process lives: the host agent takes a
  // free lock for a save that died, and finishes or undoes it.
  using _marker = await _holdMarker(paths, token, steps.kind);
  const client = await QmpClient.connect(paths.runtime.qmpSocket);
  try {
    await client.execute("stop");
    crashPoint("suspend.stopped");
    await client.execute("migrate-set-parameters", { "max-bandwidth": _unlimitedBandwidth });
    // QEMU runs this through /bin/sh: the path goes in quoted.
    await client.execute("migrate", { uri: `exec:cat > ${shellQuote(partial.memory)}` });
    crashPoint("suspend.writing");
    const outcome = await _awaitMigration(client);
    if (outcome !== "completed") {
      await client.execute("migrate_cancel").catch(() => {});
      await client.execute("cont").catch(() => {});
      await removePartialSuspend(paths, kind);
      await Deno.remove(paths.runtime.suspending).catch(() => {});
      throw new VirtdevError(`QEMU could not write ${paths.name}'s state (${outcome}); the guest runs on.`, {
        exitCode: SuspendExit.failed,
        hint: `See 'virtdev log ${paths.name}'; is there room for its memory in ${paths.dir}?`,
      });
    }
    crashPoint("suspend.written");
    const memoryBytes = (await Deno.stat(partial.memory)).size;
    try {
      await steps.beforeCommit?.(partial);
      const record: SuspendRecord = {
        version: 1,
        token,
        savedAt: new Date().toISOString(),
        memoryBytes,
        ...steps.fields,
        fingerprint: await fingerprintOf(paths, {
          args: steps.args,
          firmwareCode: steps.firmwareCode,
          qemuVersion: await qemuVersionLine(),
        }),
      };
      await commitSuspendState(paths, record, kind);
    } catch (error) {
      await client.execute("cont").catch(() => {});
      await removePartialSuspend(paths, kind);
      await Deno.remove(paths.runtime.suspending).catch(() => {});
      throw error;
    }
    crashPoint("suspend.committed");
    await steps.after(client);
    // Done: the marker goes before its lock comes free, so that the host agent's guard does not take the save's end
    // for its death (it would say so in vm.log, and end or resume QEMU a second time).
    await Deno.remove(paths.runtime.suspending).catch(() => {});
    return memoryBytes;
  } finally {
    client.close();
  }
}

/** Writes the suspend marker and locks it (flock, released by the kernel however this process ends). */
async function _holdMarker(paths: ProjectPaths, token: string, kind: SavedKind): Promise<Deno.FsFile> {
  const file = await Deno.open(paths.runtime.suspending, {
    read: true,
    write: true,
    create: true,
    truncate: true,
    mode: privateFileMode,
  });
  try {
    await file.lock(true);
    const bytes = new TextEncoder().encode(`${JSON.stringify({ pid: Deno.pid, token, kind })}\n`);
    for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (error) {
    file.close();
    throw error;
  }
  return file;
}

function _checkSuspendable(paths: ProjectPaths, status: VmStatus, options: { readonly template?: boolean } = {}): void {
  const name = paths.name;
  if (status.foreign) {
    throw new VirtdevError(`Project ${name} runs, but virtdev did not start it, so it cannot suspend it.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint: `Stop it with 'virtdev stop ${name}'.`,
    });
  }
  if (status.pid === undefined || status.record?.qemu === undefined || status.state === "stopped") {
    throw new VirtdevError(`Project ${name} is not running.`, {
      exitCode: SuspendExit.notRunning,
      hint: `Start it with 'virtdev start ${name}'.`,
    });
  }
  if (status.record.ephemeral && !options.template) {
    throw new VirtdevError(`Project ${name} runs disposably (--ephemeral); its writes end with it.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint:
        `Stop it with 'virtdev stop ${name}', or keep it as the warm image of its disposable runs: virtdev suspend --template ${name}`,
    });
  }
  if (!status.record.ephemeral && options.template) {
    throw new VirtdevError(`Project ${name} runs on its own disks; a warm image is taken of a disposable boot.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint: `Stop it first (virtdev stop ${name}), then: virtdev suspend --template ${name}`,
    });
  }
  if (status.state === "paused" || status.state === "stopping") {
    throw new VirtdevError(
      `Project ${name} is ${status.state}${status.halt ? ` (${status.halt.reason})` : ""}; it cannot be suspended now.`,
      {
        exitCode: SuspendExit.cannotSuspend,
        hint: status.state === "paused" ? `'virtdev start ${name}' resumes it first.` : "Wait for the stop to finish.",
      },
    );
  }
  if (status.agentGone) {
    throw new VirtdevError(`Project ${name}'s host agent is gone, so nothing would guard its suspend.`, {
      exitCode: SuspendExit.cannotSuspend,
      hint: `Stop it and start it again: virtdev stop ${name} && virtdev start ${name}`,
    });
  }
}

/** The memory of QEMU's command line (`-m`, in MiB as virtdev writes it), in bytes. */
function _configuredMemory(args: readonly string[]): number | undefined {
  const value = args[args.indexOf("-m") + 1];
  return args.includes("-m") && /^\d{1,7}$/.test(value ?? "") ? Number(value) * 2 ** 20 : undefined;
}

/**
 * Readies the guest for a save, in one login: arms the next resume's clock
 * (`guest_clock.ts`), has the guest write what it holds to its disks, and
 * asks how much memory it uses. Best effort: a guest that does not answer
 * is saved as it is.
 */
async function _readyGuestForSave(
  target: SshTarget,
): Promise<{ readonly used: number; readonly free: number } | undefined> {
  const result = await runTool(
    "ssh",
    sshArguments(
      target,
      // The resume's clock is armed here, where a sudo costs no resume time (guest_clock.ts).
      [`${armGuestClockCommand}; sync; grep -E '^(MemTotal|MemFree):' /proc/meminfo`],
      { batch: true },
    ),
    { allowFailure: true, timeoutMs: 20_000, maxCapture: 4096 },
  ).catch(() => undefined);
  if (result?.code !== 0) return undefined;
  // The guest's words: numbers or nothing.
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d{1,15}) kB$`, "m").exec(result.stdout)?.[1]);
  const used = (field("MemTotal") - field("MemFree")) * 1024;
  const free = field("MemFree") * 1024;
  return Number.isSafeInteger(used) && used > 0 && Number.isSafeInteger(free) ? { used, free } : undefined;
}

/** Polls the migration until it ends; its status, or `timeout`. */
async function _awaitMigration(client: QmpClient): Promise<string> {
  const deadline = Date.now() + _writeTimeoutMs;
  let delay = 10;
  while (Date.now() < deadline) {
    const info = await client.execute("query-migrate") as { status?: string; "error-desc"?: string };
    if (info.status === "completed") return "completed";
    if (info.status === "failed" || info.status === "cancelled") {
      return info["error-desc"] ? `${info.status}: ${info["error-desc"]}` : String(info.status);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
  return "timeout";
}
