/**
 * Starting and stopping a project's VM. The caller holds the store lock;
 * `start` keeps it until QEMU has bound its port, so two starts never pick
 * the same port.
 *
 * @module
 */
import { copyFileAtomic, writeFileAtomic } from "../store/atomic_write.ts";
import { copyReflinked } from "../store/reflink_copy.ts";
import { createDelta } from "./images.ts";
import { ensurePrivateDirectory } from "../store/file_modes.ts";
import { type Config, type Environment, resolveFirmware } from "../store/config.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { dirname, join } from "../store/path.ts";
import { runTool } from "../store/process.ts";
import { filesInUse, qemuProcessesUsing } from "./disk_locks.ts";
import { readGeneration } from "../store/generation.ts";
import { fwCfgNames } from "../guest/guest_contract.ts";
import { ensureHostKey } from "../guest/host_key.ts";
import { ensureInstanceId } from "../guest/instance_id.ts";
import { finishInterruptedRevert } from "../projects/disk_snapshots.ts";
import { choosePort, isPortFree, parsePort, type PortChoice } from "./ports.ts";
import { requireProject, requireVmPaths } from "../projects/project_lookup.ts";
import { QmpClient, QmpClosedError } from "./qmp.ts";
import { clearHaltRecord, haltHints, type VmHalt } from "./vm_halt.ts";
import { readAgentState } from "./agent_state.ts";
import { isProcessAlive, signalProcess } from "../store/processes.ts";
import { maxSocketPath, qemuArguments, type VmSpec } from "./qemu_args.ts";
import {
  clearRuntime,
  inspectVm,
  isProcessOurQemu,
  livePid,
  type RuntimeRecord,
  type VmStatus,
} from "./runtime_state.ts";
import { pathExists, type ProjectPaths, readOptionalText, type Store } from "../store/store.ts";
import {
  chooseSupervisor,
  hostAgentListeningPath,
  LaunchExit,
  netFilterCommand,
  qemuProgram,
  qemuVersionLine,
  supervisorFor,
} from "./supervisor.ts";
import { policyFileOf, writePolicyFile } from "./egress/policy_file.ts";
import { blockedLogPath, readProjectZone, resolvePolicy } from "./egress/zone_settings.ts";
import {
  detectPasst,
  type Egress,
  type NetBackend,
  passtMaxSocketPath,
  passtSocketPath,
  planNetwork,
} from "./network.ts";
import { appendVmLog } from "./vm_log.ts";
import {
  discardSuspendState,
  fingerprintDifferences,
  fingerprintOf,
  readSuspendRecord,
  removePartialSuspend,
  type SavedKind,
  suspendFiles,
  type SuspendRecord,
} from "./suspend_state.ts";
import { suspendedError } from "./suspended_error.ts";
import { createBootExportDisk, directKernelAppend, readKeptBoot } from "./direct_boot.ts";
import { suspendedStateLoadFailure } from "./resume_agent.ts";
import { backsOntoOneOf } from "./base_backing.ts";
import { endOrphanHelpers, findOrphanHelpers } from "./orphan_helpers.ts";
import { effectiveVmSize, readProjectSettings } from "../projects/settings.ts";
import { probeKvm } from "./kvm_probe.ts";
import type { ShutdownWatch } from "./shutdown_proof.ts";
import { describeRecovery, recoverReseal } from "../base/reseal.ts";
import type { Reporter } from "../store/reporter.ts";

/** Exit codes of `start`. */
export const StartExit = {
  fileMissing: 4,
  running: 6,
  baseGenerationMissing: 9,
  projectGenerationMissing: 10,
  generationMismatch: 11,
  baseGenerationCorrupt: 13,
  projectGenerationCorrupt: 14,
  /** The runtime paths are unusable: too long for a unix socket, or (from source) holding a comma. */
  socketPathTooLong: 15,
  /** A paused VM was resumed and paused again at once (its host disk is still full). */
  stillPaused: 16,
} as const;

/** Exit codes of `stop`. */
export const StopExit = { notRunning: 4, stillRunning: 5 } as const;

/**
 * Picks the accelerator. KVM counts only where a short run of the UEFI
 * firmware under it proves it works (see `kvm_probe.ts`, cached per host
 * boot, QEMU and firmware): with `auto` an unusable KVM means TCG and a
 * warning saying why, with `kvm` an error within seconds rather than a
 * guest that never boots.
 *
 * @throws {VirtdevError} exit `kvmUnusableExit` (start's 12 by default) when
 *   VIRTDEV_ACCEL=kvm and KVM cannot run the firmware.
 */
export async function resolveAccel(
  config: Pick<Config, "accel" | "cache" | "ovmfCode" | "ovmfVars">,
  reporter: Reporter,
  options: { readonly kvmUnusableExit?: number } = {},
): Promise<"kvm" | "tcg"> {
  if (config.accel === "tcg") {
    reporter.warn("running without KVM (software emulation, VIRTDEV_ACCEL=tcg): the VM will be slow.");
    return "tcg";
  }
  const probe = await probeKvm(config.cache, { firmwareCode: resolveFirmware(config).code });
  if (probe.usable) return "kvm";
  if (config.accel === "kvm") {
    throw new VirtdevError(`VIRTDEV_ACCEL=kvm, but KVM cannot run the UEFI firmware here: ${probe.reason}`, {
      exitCode: options.kvmUnusableExit ?? LaunchExit.failed,
      hint: "Unset VIRTDEV_ACCEL (or set it to auto) to fall back to TCG; 'virtdev doctor' probes again.",
    });
  }
  reporter.warn(`KVM is not usable: ${probe.reason} Using TCG (software emulation): the VM will be slow.`);
  return "tcg";
}

/** The VM description of a project. */
export function projectVmSpec(
  paths: ProjectPaths,
  options: {
    readonly config: Pick<Config, "vmMemoryMiB" | "vmCpus">;
    readonly accel: "kvm" | "tcg";
    readonly firmwareCode: string;
    /** QEMU's `-netdev` value (see `network.ts`). */
    readonly netdev: string;
    /** Pass the project's instance id (a project VM, not the maintenance VM). */
    readonly instance?: boolean;
  },
): VmSpec {
  return {
    name: paths.name,
    accel: options.accel,
    memoryMiB: options.config.vmMemoryMiB,
    cpus: options.config.vmCpus,
    firmware: { code: options.firmwareCode, nvram: paths.nvram },
    disks: { system: paths.systemImage, home: paths.homeImage },
    netdev: options.netdev,
    runtime: {
      monitorSocket: paths.runtime.monitorSocket,
      qmpSocket: paths.runtime.qmpSocket,
    },
    eventSocket: paths.runtime.qmpWatchSocket,
    fwCfg: [
      { name: fwCfgNames.project, string: paths.name },
      { name: fwCfgNames.hostKey, file: paths.hostKey },
      { name: fwCfgNames.hostKeyPublic, file: paths.hostKeyPublic },
      // Not for the maintenance VM: the base keeps its machine-id.
      ...(options.instance ? [{ name: fwCfgNames.instance, file: paths.instance }] : []),
    ],
  };
}

/**
 * Refuses to boot a project on a base it was not made from; a detached
 * project needs no base. With `stale`, a project whose own generation is
 * kept (see `kept_generations.ts`) boots on it.
 *
 * @returns where the project boots: on the current base, detached, or on
 *   its kept generation.
 */
export async function checkGenerationGate(
  store: Store,
  paths: ProjectPaths,
  options: { readonly stale?: boolean } = {},
): Promise<"current" | "detached" | "kept"> {
  const project = await readGeneration(paths.generation);
  if (project.kind === "detached") return "detached";
  const base = await readGeneration(store.base.generation);
  const rebuild = `virtdev recreate ${paths.name}  (or: virtdev destroy ${paths.name} && virtdev create ${paths.name})`;
  if (base.kind === "missing") {
    throw new VirtdevError(`The base generation file is missing: ${store.base.generation}.`, {
      exitCode: StartExit.baseGenerationMissing,
      hint: "The base is damaged or gone; install and seal it again.",
    });
  }
  if (base.kind !== "number") {
    throw new VirtdevError(`The base generation is not a number: ${store.base.generation}.`, {
      exitCode: StartExit.baseGenerationCorrupt,
      hint: "The base is damaged; install and seal it again.",
    });
  }
  if (project.kind === "missing") {
    throw new VirtdevError(`Project ${paths.name} has no generation file.`, {
      exitCode: StartExit.projectGenerationMissing,
      hint: `Rebuild it: ${rebuild}`,
    });
  }
  if (project.kind !== "number") {
    throw new VirtdevError(`Project ${paths.name} has an unreadable generation: ${paths.generation}.`, {
      exitCode: StartExit.projectGenerationCorrupt,
      hint: `Rebuild it: ${rebuild}`,
    });
  }
  if (project.value === base.value) return "current";
  const kept = store.keptBase(project.value);
  const onKept = await pathExists(kept.systemImage) && await backsOntoOneOf(paths, [kept]);
  if (onKept && options.stale) return "kept";
  const what =
    `The base has changed since project ${paths.name} was created (project generation ${project.value}, base ${base.value})`;
  if (onKept) {
    throw new VirtdevError(`${what}.`, {
      exitCode: StartExit.generationMismatch,
      hint: [
        `Its own base is kept (${kept.dir}), so its data is safe. To save it:`,
        `  virtdev start --stale ${paths.name}   boots it on generation ${project.value}, for backup, transfer or ssh`,
        `  virtdev recreate ${paths.name}        (while it runs --stale) backs it up, rebuilds it on generation ${base.value} and restores`,
        `  virtdev detach ${paths.name}          (stopped) makes it independent of any base`,
      ],
    });
  }
  throw new VirtdevError(`${what}, and no kept copy of generation ${project.value} is the base of its disks.`, {
    exitCode: StartExit.generationMismatch,
    hint: [
      "Booting its disks on another base would corrupt its file system, so it cannot start.",
      `Rebuild it and restore its latest backup: ${rebuild}`,
    ],
  });
}

/**
 * Cleans the runtime files a VM that is gone left behind (after a crash,
 * a SIGKILL or a host reboot).
 */
export async function cleanStaleRuntime(paths: ProjectPaths, status: VmStatus): Promise<boolean> {
  if ((status.state !== "stopped" && status.state !== "suspended") || !status.stale) return false;
  await _endOrphans(paths);
  await clearRuntime(paths);
  await appendVmLog(paths, "found the VM gone with its runtime files left behind; cleaned them");
  return true;
}

/** Ends the helpers (passt, the egress filter) that `paths`' host agent left behind when it died. */
async function _endOrphans(paths: ProjectPaths, reporter?: Reporter): Promise<void> {
  const orphans = await findOrphanHelpers({ projectsDir: dirname(paths.dir) }, { project: paths.name });
  if (orphans.length === 0) return;
  await endOrphanHelpers(orphans);
  const what = orphans.map((orphan) => `${orphan.kind} (PID ${orphan.pid})`).join(", ");
  reporter?.warn(`ended ${what}, left running by a host agent that died.`);
  await appendVmLog(paths, `ended ${what}, left by a host agent that died`);
}

/** What a successful start did. */
export interface StartResult {
  readonly port: number;
  readonly supervisor: RuntimeRecord["supervisor"];
  readonly cleanedStale: boolean;
  readonly network: { readonly backend: NetBackend; readonly egress: Egress };
  /** A VM QEMU had paused (a failed disk write) was resumed, not started. */
  readonly resumed?: boolean;
  /** The VM was resumed from a saved state: its suspended one, or (a disposable run) its warm image. */
  readonly resumedState?: SavedKind;
}

/** Starts project `name`'s VM. Call under the store lock. */
export async function startProject(
  store: Store,
  name: string,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly reporter: Reporter;
    readonly port?: string;
    /** The egress for this boot only; the project's setting otherwise. */
    readonly egress?: Egress;
    /** A disposable boot: writes go to overlays that stop drops, so the project stays as it was. */
    readonly ephemeral?: boolean;
    /** Boot a stale project on its kept base generation. */
    readonly stale?: boolean;
    /** Boot a suspended project afresh: its suspended state is discarded. */
    readonly cold?: boolean;
  },
): Promise<StartResult> {
  const explicit = options.port === undefined ? undefined : parsePort(options.port);
  const recovered = describeRecovery(await recoverReseal(store));
  if (recovered) options.reporter.info(recovered);
  const paths = await requireProject(store, name);
  for (const file of [paths.systemImage, paths.homeImage, paths.nvram]) {
    if (!await pathExists(file)) {
      throw new VirtdevError(`Project ${name} is incomplete: ${file} is missing.`, {
        exitCode: StartExit.fileMissing,
        hint: `Rebuild it: virtdev destroy ${name} && virtdev create ${name}`,
      });
    }
  }
  // Missing firmware is named before anything else is touched.
  resolveFirmware(options.config);
  const onBase = await checkGenerationGate(store, paths, { stale: options.stale });
  if (onBase === "kept") options.reporter.warn(`Booting ${name} on its kept base generation (it is stale).`);
  const status = await inspectVm(paths);
  if (status.foreign) {
    throw new VirtdevError(`Project ${name} is already running, started elsewhere: a QEMU has its disks open.`, {
      exitCode: StartExit.running,
      hint: [
        "virtdev did not start it (the original virtdev, or QEMU by hand), so it will not boot the same disks twice.",
        `Stop it with 'virtdev stop ${name}', then start it here.`,
      ],
    });
  }
  if (status.state === "paused" && status.halt && !status.halt.ends && status.record) {
    await _resume(paths, status.halt);
    const record = status.record;
    return {
      port: record.port,
      supervisor: record.supervisor,
      cleanedStale: false,
      network: record.network ?? { backend: "slirp", egress: "full" },
      resumed: true,
    };
  }
  if (status.state !== "stopped" && status.state !== "suspended") {
    throw new VirtdevError(`Project ${name} is already running (PID ${status.pid}).`, {
      exitCode: StartExit.running,
      hint: `Connect with 'virtdev ssh ${name}', or stop it with 'virtdev stop ${name}'.`,
    });
  }
  const cleanedStale = await cleanStaleRuntime(paths, status);
  // What a suspend left when it and its host agent both died (a host crash): never a state.
  await removePartialSuspend(paths);
  await removePartialSuspend(paths, { kind: "template" });
  const resume: _Resume | undefined = status.state === "suspended"
    ? await _suspendedStateToResume(paths, options)
    : options.ephemeral && !options.cold
    ? await _templateToResume(paths)
    : undefined;
  await clearHaltRecord(paths);
  _checkRuntimePaths(paths);
  await ensureHostKey(paths);
  await ensureInstanceId(paths);
  if (await finishInterruptedRevert(paths)) options.reporter.warn("finished a snapshot revert that was interrupted.");
  try {
    const launched = await _launchVm(store, paths, { ...options, explicit, resume, onBase });
    return { ...launched, cleanedStale, ...(resume ? { resumedState: resume.kind } : {}) };
  } catch (error) {
    const why = error instanceof _StateMismatch
      ? error.message
      : error instanceof VirtdevError && error.message.includes(suspendedStateLoadFailure)
      ? error.message
      : undefined;
    if (!resume || why === undefined) throw error;
    await discardSuspendState(paths, { kind: resume.kind });
    const what = resume.kind === "template" ? "warm image for disposable runs" : "suspended state";
    // A warm image goes stale whenever the project's disks change: that is news, not a fault.
    const say = resume.kind === "template"
      ? options.reporter.info.bind(options.reporter)
      : options.reporter.warn.bind(options.reporter);
    say(`${name}'s ${what} cannot be resumed: ${why} It is discarded; booting cold.`);
    await appendVmLog(paths, `discarded the ${what}, which could not be resumed: ${why}`);
    await clearRuntime(paths);
    const launched = await _launchVm(store, paths, { ...options, explicit, onBase });
    return { ...launched, cleanedStale };
  }
}

/** A saved state a start resumes from, and which kind it is. */
interface _Resume {
  readonly kind: SavedKind;
  readonly record: SuspendRecord;
}

/** The project's warm image, when there is a readable one: a disposable boot resumes from it. */
async function _templateToResume(paths: ProjectPaths): Promise<_Resume | undefined> {
  const record = await readSuspendRecord(paths, { kind: "template" });
  return record === undefined ? undefined : { kind: "template", record };
}

/**
 * The base's kept kernel for a direct boot of project `paths`, unless
 * `VIRTDEV_BOOT=firmware`, the base has none, or the project's own kernel
 * has diverged (it said so on its console; see `direct_boot.ts`).
 */
async function _directKernel(
  store: Store,
  paths: ProjectPaths,
  options: { readonly config: Pick<Config, "boot">; readonly reporter: Reporter },
): Promise<VmSpec["directKernel"]> {
  if (options.config.boot === "firmware") return undefined;
  const kept = await readKeptBoot(store.base);
  if (kept === undefined) return undefined;
  if (await pathExists(paths.kernelDiverged)) {
    options.reporter.info(
      `${paths.name} has a kernel of its own (updated inside it): it boots through its firmware and boot loader.`,
    );
    return undefined;
  }
  return { kernel: kept.kernel, initrd: kept.initrd, append: directKernelAppend(kept) };
}

/** A saved state that does not belong to the machine as it is now. */
class _StateMismatch extends Error {
  constructor(differences: readonly string[]) {
    super(`${differences.join("; ")}.`);
    this.name = "_StateMismatch";
  }
}

/**
 * The suspended state `start` resumes, or `undefined` when it boots cold:
 * asked to (`--cold`), or the state is unreadable. A state not resumed is
 * discarded, and said so.
 */
async function _suspendedStateToResume(
  paths: ProjectPaths,
  options: { readonly reporter: Reporter; readonly cold?: boolean; readonly ephemeral?: boolean },
): Promise<_Resume | undefined> {
  if (options.ephemeral) throw suspendedError(paths.name, "boot disposably");
  const record = await readSuspendRecord(paths);
  if (record !== undefined && !options.cold) return { kind: "suspended", record };
  await discardSuspendState(paths);
  const why = options.cold ? "start --cold" : "it is unreadable";
  options.reporter.warn(`Discarded ${paths.name}'s suspended state (${why}); booting cold.`);
  await appendVmLog(paths, `discarded the suspended state (${why})`);
  return undefined;
}

/**
 * Overlays over the project's disks and a copy of its nvram, in run/: a
 * disposable boot writes only there, and stop (or the next start, after a
 * crash) removes them with the other runtime files.
 */
function _ephemeralPaths(paths: ProjectPaths): Pick<ProjectPaths, "systemImage" | "homeImage" | "nvram"> {
  const dir = paths.runtime.ephemeral;
  return { systemImage: join(dir, "system.qcow2"), homeImage: join(dir, "home.qcow2"), nvram: join(dir, "nvram") };
}

/**
 * Makes the overlays: new ones, or copies of the warm image's (reflinks
 * where the file system has them), so that each disposable run from one
 * image writes only to its own.
 */
async function _makeEphemeralOverlays(paths: ProjectPaths, options: { readonly fromTemplate: boolean }): Promise<void> {
  await ensurePrivateDirectory(paths.runtime.ephemeral);
  const overlays = _ephemeralPaths(paths);
  if (options.fromTemplate) {
    // Same names in both: the copies land where the boot's command line has them.
    const template = suspendFiles(paths, { kind: "template" });
    await copyReflinked([template.systemImage, template.homeImage, template.nvram], paths.runtime.ephemeral);
    return;
  }
  await Promise.all([
    createDelta(overlays.systemImage, paths.systemImage),
    createDelta(overlays.homeImage, paths.homeImage),
    copyFileAtomic(paths.nvram, overlays.nvram),
  ]);
}

/**
 * Refuses runtime paths a VM cannot use: a unix socket path longer than
 * the kernel (or passt) takes, or, from source, a comma, which Deno's
 * permission flags for the host agent cannot carry.
 */
function _checkRuntimePaths(paths: ProjectPaths): void {
  const longest = [...Object.values(paths.runtime), hostAgentListeningPath(paths, "00000000")]
    .reduce((a, b) => (a.length >= b.length ? a : b));
  const bytes = (path: string) => new TextEncoder().encode(path).length;
  if (bytes(longest) > maxSocketPath || bytes(passtSocketPath(paths)) > passtMaxSocketPath) {
    const shown = bytes(longest) > maxSocketPath ? longest : passtSocketPath(paths);
    throw new VirtdevError(`The project's socket paths are too long for unix sockets: ${shown}.`, {
      exitCode: StartExit.socketPathTooLong,
      hint:
        `Unix socket paths are limited to ${maxSocketPath} bytes (passt's to ${passtMaxSocketPath}). Use a shorter VIRTDEV_HOME or project name.`,
    });
  }
  if (!Deno.build.standalone && paths.dir.includes(",")) {
    throw new VirtdevError(`The project's path contains a comma: ${paths.dir}.`, {
      exitCode: StartExit.socketPathTooLong,
      hint: "Deno's permission flags cannot name such a path for the host agent. Use a VIRTDEV_HOME without commas.",
    });
  }
}

/** Boots the VM of `paths` under its supervisor: port, network, the runtime record, the launch. */
async function _launchVm(
  store: Store,
  paths: ProjectPaths,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly reporter: Reporter;
    readonly explicit?: number;
    readonly egress?: Egress;
    readonly ephemeral?: boolean;
    /** For the maintenance VM: record how the boot ends. */
    readonly shutdownWatch?: ShutdownWatch;
    /** Resume from this saved state instead of booting. */
    readonly resume?: _Resume;
    /** Where the project's disks stand: only a project on the current base boots the base's kernel directly. */
    readonly onBase?: "current" | "detached" | "kept";
    /** For the maintenance VM: the disk its guest hands its boot files over on. */
    readonly exportDisk?: string;
  },
): Promise<Omit<StartResult, "cleanedStale">> {
  const { explicit } = options;
  const name = paths.name;
  const keptText = (await readOptionalText(paths.port))?.trim();
  const kept = keptText && /^[0-9]+$/.test(keptText) ? Number(keptText) : undefined;
  const keptByOthers = new Set<number>();
  for (const other of await store.listProjects()) {
    if (other === name) continue;
    const text = (await readOptionalText(store.project(other).port))?.trim();
    if (text && /^[0-9]+$/.test(text)) keptByOthers.add(Number(text));
  }
  // Another store (another VIRTDEV_HOME, its own lock) may choose the same
  // free port at the same moment: the bind decides, and the loser chooses
  // again. A port asked for by name is never swapped.
  const lost = new Set<number>();
  for (let attempt = 1;; attempt++) {
    const choice = await choosePort({ explicit, kept: lost.has(kept ?? -1) ? undefined : kept }, {
      isFree: isPortFree,
      keptByOthers: new Set([...keptByOthers, ...lost]),
    });
    try {
      return await _launchOnPort(store, paths, { ...options, choice, kept: lost.size === 0 ? kept : undefined });
    } catch (error) {
      const raced = error instanceof VirtdevError && error.exitCode === LaunchExit.portRace;
      if (!raced || choice.source === "explicit" || attempt >= _portAttempts) throw error;
      lost.add(choice.port);
      options.reporter.info(`Port ${choice.port} was taken as it was bound; choosing another.`);
    }
  }
}

/** How many ports a start tries when each is taken between its choice and its bind. */
const _portAttempts = 5;

async function _launchOnPort(
  store: Store,
  paths: ProjectPaths,
  options: Parameters<typeof _launchVm>[2] & { readonly choice: PortChoice; readonly kept: number | undefined },
): Promise<Omit<StartResult, "cleanedStale">> {
  const { choice, kept } = options;
  const name = paths.name;
  const firmware = resolveFirmware(options.config);
  if (choice.source === "auto" && kept !== undefined) {
    options.reporter.warn(`port ${kept} is taken by another program; this project moves to port ${choice.port}.`);
  }
  await writeFileAtomic(paths.port, `${choice.port}\n`);

  const accel = await resolveAccel(options.config, options.reporter);
  const supervisor = await chooseSupervisor(options.config.supervisor, options.env);
  const egress = options.egress ?? await readProjectZone(paths);
  const policy = await resolvePolicy(paths, { configDir: options.config.configDir, zone: egress });
  const network = planNetwork(paths, {
    egress,
    zone: policy.zone,
    backend: options.config.netBackend,
    sshPort: choice.port,
    passt: policy.zone !== "none" && options.config.netBackend !== "slirp" ? await detectPasst() : undefined,
    // Our own store tells who we are (Deno grants the uid only with --allow-sys).
    asRoot: (await Deno.stat(store.root)).uid === 0,
  });
  if (network.warning) options.reporter.warn(network.warning);
  // The maintenance VM has no settings of its own: the configuration's size.
  const size = effectiveVmSize(options.config, await readProjectSettings(paths));
  await ensurePrivateDirectory(paths.runDir);
  if (network.filtered) {
    await ensurePrivateDirectory(paths.runtime.network);
    await writePolicyFile(
      paths.runtime.network,
      policyFileOf(policy, { serial: 1, dnsUpstream: options.config.dnsUpstream }),
    );
  }
  const disks = options.ephemeral ? _ephemeralPaths(paths) : paths;
  const spec = projectVmSpec({ ...paths, ...disks }, {
    config: size,
    accel,
    firmwareCode: firmware.code,
    netdev: network.netdev,
    instance: !options.shutdownWatch,
  });
  const direct = options.onBase === "current" ? await _directKernel(store, paths, options) : undefined;
  const machine: VmSpec = options.shutdownWatch
    ? { ...spec, pauseOnPowerOff: true, exportDisk: options.exportDisk }
    : direct
    ? { ...spec, directKernel: direct }
    : spec;
  if (options.resume) {
    const now = await fingerprintOf(paths, {
      args: qemuArguments(machine),
      firmwareCode: firmware.code,
      qemuVersion: await qemuVersionLine(),
    });
    const differences = fingerprintDifferences(options.resume.record.fingerprint, now);
    if (differences.length > 0) throw new _StateMismatch(differences);
  }
  if (options.ephemeral) await _makeEphemeralOverlays(paths, { fromTemplate: options.resume?.kind === "template" });
  const vm: VmSpec = options.resume
    ? { ...machine, incoming: suspendFiles(paths, { kind: options.resume.kind }).memory }
    : machine;
  const record: RuntimeRecord = {
    supervisor: supervisor.kind,
    unit: supervisor.unitFor(name),
    port: choice.port,
    startedAt: new Date().toISOString(),
    qemu: { program: qemuProgram, args: qemuArguments(vm), ...(vm.incoming ? { incoming: vm.incoming } : {}) },
    consoleLogBytes: options.config.consoleLogBytes,
    network: { backend: network.backend, egress: network.egress, filtered: network.filtered },
    passt: network.passt,
    ...(network.filtered
      ? { filter: { ...netFilterCommand(paths, blockedLogPath(paths)), netDir: paths.runtime.network } }
      : {}),
    ssh: { identity: options.config.sshKey },
    shutdownWatch: options.shutdownWatch,
    ...(options.ephemeral ? { ephemeral: true } : {}),
    ...(options.resume
      ? { resume: { readiness: options.resume.record.readiness, keep: options.resume.kind === "template" } }
      : {}),
  };
  await writeFileAtomic(paths.runtime.record, `${JSON.stringify(record)}\n`);
  try {
    await supervisor.launch({
      paths,
      port: choice.port,
      explicitPort: choice.source === "explicit",
      reporter: options.reporter,
      user: options.env.USER,
    });
  } catch (error) {
    // A launch that timed out may have left QEMU running: end it before
    // its runtime files go.
    const pid = await livePid(paths);
    if (pid !== undefined) {
      await supervisor.terminate(paths, pid, record);
      await waitForQemuExit(paths.runtime.pidFile, pid, 10_000);
    }
    await clearRuntime(paths);
    throw error;
  }
  await appendVmLog(
    paths,
    `${direct ? "direct kernel; " : ""}${
      options.resume?.kind === "template"
        ? "resumed a disposable run from its warm image"
        : options.resume
        ? "resumed from its suspended state"
        : "started"
    }: port ${choice.port}, ${accel}, supervisor ${supervisor.kind}, network ${network.backend} (egress ${network.egress})`,
  );
  return { port: choice.port, supervisor: supervisor.kind, network: record.network! };
}

/**
 * Boots the maintenance VM on the disks in `maintenance/`, with its own
 * port, host key and console under `projects/maintenance/`, watched for
 * how it ends (see `shutdown_proof.ts`). Call under the store lock.
 */
export async function startMaintenanceVm(
  store: Store,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly reporter: Reporter;
    readonly shutdownWatch: ShutdownWatch;
  },
): Promise<Omit<StartResult, "cleanedStale">> {
  const paths = store.maintenanceVm();
  await ensurePrivateDirectory(paths.dir);
  const status = await inspectVm(paths);
  if (status.state !== "stopped") {
    throw new VirtdevError(`A maintenance VM is already running (PID ${status.pid}).`, {
      exitCode: StartExit.running,
      hint: "End it with 'virtdev stop maintenance'.",
    });
  }
  await cleanStaleRuntime(paths, status);
  _checkRuntimePaths(paths);
  await ensureHostKey(paths);
  // Its guest hands its boot files over on this disk as it powers off (see `direct_boot.ts`).
  const exportDisk = maintenanceBootExport(store);
  await createBootExportDisk(exportDisk);
  // It fetches packages: the internet, never the LAN or this host.
  return await _launchVm(store, paths, { ...options, egress: "wan", exportDisk });
}

/** The maintenance VM's boot-export disk: beside its runtime files, gone with the session. */
export function maintenanceBootExport(store: Store): string {
  return join(store.maintenanceVm().dir, "boot-export.raw");
}

/** The least time QEMU gets to exit after SIGTERM before stop gives up. */
const _sigtermGraceSeconds = 15;

/**
 * Lets a VM that QEMU paused (a failed disk write) run again, and checks a
 * second later that it still runs: on a disk still full, its next write
 * pauses it again.
 *
 * @throws {VirtdevError} exit 16 when it paused again.
 */
async function _resume(paths: ProjectPaths, halt: VmHalt): Promise<void> {
  const client = await QmpClient.connect(paths.runtime.qmpSocket);
  try {
    await client.execute("cont");
  } finally {
    client.close();
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const again = await inspectVm(paths);
  if (again.state === "paused") {
    throw new VirtdevError(`Project ${paths.name}'s guest stopped again: ${again.halt?.reason ?? halt.reason}.`, {
      exitCode: StartExit.stillPaused,
      hint: haltHints(again.halt ?? halt, paths.name),
    });
  }
}

/** What a stop did. */
export interface StopResult {
  /** How the VM ended. */
  readonly how: "powered off" | "terminated" | "killed" | "ended" | "discarded its suspended state";
}

/**
 * Stops project `name`'s VM: ACPI power-off through QMP, then SIGTERM after
 * `stopTimeout` seconds, then SIGKILL if QEMU outlives that too. Waits for
 * QEMU to exit. Call under the store lock.
 */
export async function stopProject(
  store: Store,
  name: string,
  options: { readonly stopTimeout: number; readonly reporter: Reporter },
): Promise<StopResult> {
  const paths = await requireVmPaths(store, name, { legacy: true });
  const status = await inspectVm(paths);
  if (status.foreign) return await _stopForeign(paths, options);
  if (status.pid === undefined) {
    await cleanStaleRuntime(paths, status);
    if (status.state === "suspended") {
      await discardSuspendState(paths);
      await appendVmLog(paths, "stopped: discarded the suspended state");
      return { how: "discarded its suspended state" };
    }
    throw new VirtdevError(`Project ${name} is not running.`, {
      exitCode: StopExit.notRunning,
      hint: `Start it with 'virtdev start ${name}'.`,
    });
  }
  const pid = status.pid;
  const agentPid = (await readAgentState(paths))?.pid;
  const supervisor = supervisorFor(status.record);
  await writeFileAtomic(paths.runtime.stopping, `${Deno.pid}\n`);
  let how: StopResult["how"] = "powered off";
  // A disposable boot has nothing to keep: QEMU is told to quit, without the guest's shutdown.
  if (status.record?.ephemeral && await _quit(paths, pid)) {
    await settleEndedVm(paths, status, { agentPid, reporter: options.reporter });
    await appendVmLog(paths, "stopped: ended (a disposable boot)");
    return { how: "ended" };
  }
  // A paused guest cannot answer the power button: QEMU is ended (it flushes its own writes).
  let exited = status.state === "paused" ? false : await _powerDown(paths, pid, options.stopTimeout * 1000);
  if (!exited) {
    options.reporter.warn(
      status.state === "paused"
        ? `the guest is paused (${status.halt?.reason}); sending SIGTERM.`
        : `the guest did not halt within ${options.stopTimeout}s; sending SIGTERM.`,
    );
    how = "terminated";
    await supervisor.terminate(paths, pid, status.record);
    // A short VIRTDEV_STOP_TIMEOUT is for the guest; QEMU's own exit on a
    // busy host (TCG, 2 cores, a disk flushing gigabytes) can take seconds.
    exited = await waitForQemuExit(
      paths.runtime.pidFile,
      pid,
      Math.max(options.stopTimeout, _sigtermGraceSeconds) * 1000,
    );
  }
  if (!exited) {
    // The guest is already gone for good: what is left is a QEMU that will
    // not end. Its written data is in the page cache either way.
    options.reporter.warn(`QEMU (PID ${pid}) did not exit after SIGTERM; sending SIGKILL.`);
    how = "killed";
    await supervisor.kill(pid, status.record);
    exited = await waitForQemuExit(paths.runtime.pidFile, pid, _sigtermGraceSeconds * 1000);
  }
  if (!exited) {
    await Deno.remove(paths.runtime.stopping).catch(() => {});
    throw new VirtdevError(`Project ${name}'s QEMU (PID ${pid}) is still running after SIGKILL.`, {
      exitCode: StopExit.stillRunning,
      hint: `It may be stuck in the kernel (state D in 'ps -o stat= -p ${pid}'); look at 'virtdev log ${name}'.`,
    });
  }
  await settleEndedVm(paths, status, { agentPid, reporter: options.reporter });
  await appendVmLog(paths, `stopped: ${how}`);
  return { how };
}

/**
 * What follows QEMU's exit, for stop and suspend: the supervisor lets go,
 * the host agent finishes, helpers it left are ended, run/ is cleared.
 */
export async function settleEndedVm(
  paths: ProjectPaths,
  status: VmStatus,
  options: { readonly agentPid: number | undefined; readonly reporter: Reporter },
): Promise<void> {
  await supervisorFor(status.record).release(status.record);
  // The host agent outlives QEMU by a moment: it stops the filter and passt,
  // which write their last reports into run/. Cleared after it has gone.
  const agentPid = options.agentPid;
  if (agentPid !== undefined) await _waitUntil(async () => !await isProcessAlive(agentPid), _agentExitMs);
  // A live agent stops its own helpers; only one that died before the stop leaves any.
  if (status.agentGone) await _endOrphans(paths, options.reporter);
  await clearRuntime(paths);
}

/** How long a stop waits for the host agent to finish after QEMU. */
const _agentExitMs = 5_000;

/**
 * Stops a VM that virtdev did not start but that runs on the project's
 * disks: the original tool's (its HMP socket in the project directory,
 * its systemd unit `virtdev-<name>`) or one started by hand. ACPI
 * power-off where there is a way to press the button, then SIGTERM and
 * SIGKILL to the QEMU whose command line names the disks. Ended once no
 * process holds the disks.
 */
async function _stopForeign(
  paths: ProjectPaths,
  options: { readonly stopTimeout: number; readonly reporter: Reporter },
): Promise<StopResult> {
  const disks = [paths.systemImage, paths.homeImage, paths.nvram];
  const released = (timeoutMs: number) => _waitUntil(async () => (await filesInUse(disks)).length === 0, timeoutMs);
  const legacyMonitor = join(paths.dir, "monitor.sock");
  let pressed = false;
  try {
    const connection = await Deno.connect({ transport: "unix", path: legacyMonitor });
    try {
      await connection.write(new TextEncoder().encode("system_powerdown\n"));
      pressed = true;
    } finally {
      connection.close();
    }
  } catch (error) {
    if (!_isConnectionFailure(error)) throw error;
  }
  const unit = `virtdev-${paths.name}`;
  if (!pressed) {
    const active = await runTool("systemctl", ["--user", "is-active", "--quiet", unit], { allowFailure: true })
      .catch((error) => {
        if (error instanceof VirtdevError && error.exitCode === ExitCode.toolMissing) return undefined;
        throw error;
      });
    if (active?.code === 0) {
      options.reporter.info(`Stopping the systemd unit ${unit}, which another tool started...`);
      await runTool("systemctl", ["--user", "stop", unit], { allowFailure: true });
      if (await released(_sigtermGraceSeconds * 1000)) return { how: "terminated" };
    }
  }
  if (pressed && await released(options.stopTimeout * 1000)) {
    await Deno.remove(join(paths.dir, "port")).catch(() => {});
    return { how: "powered off" };
  }
  for (const [signal, how] of [["TERM", "terminated"], ["KILL", "killed"]] as const) {
    const pids = await qemuProcessesUsing(disks);
    if (pids.length === 0 && (await filesInUse(disks)).length === 0) return { how };
    options.reporter.warn(
      pids.length === 0
        ? `the disks are in use, but no QEMU process names them; waiting.`
        : `sending SIG${signal} to QEMU (PID ${pids.join(", ")}), which virtdev did not start.`,
    );
    for (const pid of pids) await signalProcess(pid, signal);
    if (await released(_sigtermGraceSeconds * 1000)) return { how };
  }
  throw new VirtdevError(`Project ${paths.name}'s disks are still in use by another process.`, {
    exitCode: StopExit.stillRunning,
    hint: `Find it with: fuser -v ${paths.systemImage}`,
  });
}

async function _waitUntil(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  while (!await done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 250);
  }
  return true;
}

/**
 * Sends `system_powerdown` and waits until QEMU closes the QMP connection
 * (it does when it exits) and the process is gone. A QMP socket that
 * refuses or is missing means no power button to press (false); anything
 * else (a permission, a bug) is an error for the user to see.
 */
async function _powerDown(paths: ProjectPaths, pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const client = await _connectQmp(paths);
  if (client === undefined) return false;
  try {
    await client.execute("system_powerdown");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = client.waitForEvent("virtdev-never").then(() => true);
    const timedOut = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const ended = await Promise.race([closed, timedOut]);
    clearTimeout(timer);
    if (!ended) return false;
  } catch (error) {
    // QEMU went away mid-command: it is exiting.
    if (!_isConnectionFailure(error)) throw error;
  } finally {
    client.close();
  }
  return await waitForQemuExit(paths.runtime.pidFile, pid, Math.max(deadline - Date.now(), 1000));
}

/** Tells QEMU to quit at once and waits for it; false when it could not be told. */
async function _quit(paths: ProjectPaths, pid: number): Promise<boolean> {
  const client = await _connectQmp(paths);
  if (client === undefined) return false;
  try {
    await client.execute("quit").catch((error) => {
      if (!_isConnectionFailure(error)) throw error;
    });
  } finally {
    client.close();
  }
  return await waitForQemuExit(paths.runtime.pidFile, pid, _sigtermGraceSeconds * 1000);
}

/** The VM's QMP session; `undefined` when no QEMU listens (nothing to tell), other failures thrown. */
async function _connectQmp(paths: ProjectPaths): Promise<QmpClient | undefined> {
  try {
    return await QmpClient.connect(paths.runtime.qmpSocket);
  } catch (error) {
    if (_isConnectionFailure(error)) return undefined;
    throw error;
  }
}

/** Whether `error` says the QMP peer is not there or went away. */
function _isConnectionFailure(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    error instanceof QmpClosedError;
}

/** Waits for QEMU `pid` (of `pidFile`) to be gone; QEMU exits right after closing its sockets. */
export async function waitForQemuExit(pidFile: string, pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (await isProcessOurQemu(pid, pidFile)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
  return true;
}
