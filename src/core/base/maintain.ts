/**
 * `maintain`: update the base. The base is copied to `maintenance/` and
 * booted writable as the virtual project `maintenance`; the user (or the
 * provision hook) works in it; the base is resealed from it only after the
 * guest has powered itself off, as proven on QMP, and the user agreed.
 * Anything else (`virtdev stop maintenance`, Ctrl-C, a panic, a kill, a
 * failed hook, a declined reseal) removes `maintenance/` and leaves the
 * base and its generation exactly as they were.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { Config, Environment } from "../store/config.ts";
import { resolveFirmware } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { ensurePrivateDirectory, privateFileMode } from "../store/file_modes.ts";
import { isStale, readGeneration } from "../store/generation.ts";
import type { LockTaker } from "../store/lock.ts";
import { runTool } from "../store/process.ts";
import { signalProcess } from "../store/processes.ts";
import type { Reporter } from "../store/reporter.ts";
import { baseFileNames, maintenanceVmName, pathExists, type Store } from "../store/store.ts";
import { requireRunningGuest, waitForGuest } from "../guest/guest_access.ts";
import { isReadableFile, runProvision } from "../guest/provision.ts";
import { sshArguments } from "../guest/ssh.ts";
import { requireKey } from "../guest/ssh_key.ts";
import { checkImage } from "../vm/images.ts";
import { suspendedProjectsError } from "../vm/suspended_error.ts";
import { importBootExport, packedKernelNote } from "../vm/direct_boot.ts";
import { inspectVm } from "../vm/runtime_state.ts";
import { judgeShutdown, readShutdownProof, type ShutdownVerdict } from "../vm/shutdown_proof.ts";
import { haltHints, readHaltRecord } from "../vm/vm_halt.ts";
import { maintenanceBootExport, startMaintenanceVm, stopProject } from "../vm/vm_lifecycle.ts";
import { copyWithProgress } from "./base_copy.ts";
import { projectsOnBase } from "./kept_generations.ts";
import { describeRecovery, nextGeneration, recoverReseal, swapInMaintenance } from "./reseal.ts";

/** Exit codes of `maintain`. */
export const MaintainExit = {
  noBase: 3,
  baseFileMissing: 4,
  projectsRunning: 7,
  orphan: 8,
  sshFailed: 10,
  aborted: 11,
  declined: 12,
  systemCheckFailed: 13,
  homeCheckFailed: 14,
  provisionFailed: 17,
  notClean: 18,
  panicked: 19,
  inventoryFailed: 20,
  interrupted: 130,
} as const;

/** Where maintain reports to. */
export interface MaintainProgress extends Reporter {
  /** A stage begins. */
  stage(line: string): void;
  /** Output of a hook, from the guest. */
  output(text: string): void;
  /** The inventory's before/after diff (may hold guest bytes). */
  diff(text: string): void;
}

/** What the user asked for. */
export interface MaintainRequest {
  /** Unattended: power off after the provision hook, reseal without asking. */
  readonly yes: boolean;
  readonly noProvision: boolean;
  readonly noInventory: boolean;
}

/** What a finished maintain did. */
export interface MaintainResult {
  readonly from: string;
  readonly to: string;
  /** Projects on another generation now. */
  readonly outdated: readonly string[];
}

/** The maintenance hooks' places: `~/.config/virtdev/maintenance/{provision,inventory}`. */
export function maintenanceHooks(config: Pick<Config, "configDir">): { provision: string; inventory: string } {
  const dir = join(config.configDir, "maintenance");
  return { provision: join(dir, "provision"), inventory: join(dir, "inventory") };
}

/** The most inventory output kept; an inventory is a list, not a stream. */
const _maxInventoryChars = 4 << 20;

/**
 * Runs a maintenance session and reseals the base from it. Takes the store
 * lock for the whole session.
 *
 * @throws {VirtdevError} with a {@link MaintainExit} code; the base is
 *   then unchanged.
 */
export async function maintainBase(
  store: Store,
  request: MaintainRequest,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly progress: MaintainProgress;
    /** Asks the user to confirm the reseal (not called with `yes`). */
    readonly confirm: () => Promise<boolean>;
    /** Aborts the session (Ctrl-C). */
    readonly signal?: AbortSignal;
    /** The store lock, held for the whole session. */
    readonly lock: LockTaker;
  },
): Promise<MaintainResult> {
  const { config, progress } = options;
  using _lock = await options.lock("maintain");
  const recovered = describeRecovery(await recoverReseal(store));
  if (recovered) progress.info(recovered);
  await _preflight(store, config);

  const hooks = maintenanceHooks(config);
  const provision = !request.noProvision && await isReadableFile(hooks.provision) ? hooks.provision : undefined;
  const inventory = !request.noInventory && await isReadableFile(hooks.inventory) ? hooks.inventory : undefined;
  const generations = await nextGeneration(store);
  const vm = store.maintenanceVm();
  const session = new _Session(store, options);
  try {
    await ensurePrivateDirectory(store.maintenance.dir);
    for (const file of baseFileNames) {
      const source = join(store.base.dir, file);
      let shown = -1;
      const method = await copyWithProgress(source, join(store.maintenance.dir, file), {
        onProgress: (copied, total) => {
          const percent = total === 0 ? 100 : Math.floor(copied * 100 / total);
          if (percent >= shown + 10 || copied === total) {
            shown = percent;
            progress.info(`  ${file}: ${percent}%`);
          }
        },
      });
      if (method === "reflink") progress.info(`  ${file}: shared with the base (reflink)`);
    }

    let before: string | undefined;
    await session.boot("Booting the maintenance VM");
    if (inventory) before = await session.inventory(inventory);
    if (provision) {
      progress.stage(`Running the provision hook ${provision}`);
      await session.abortable(
        runProvision(store, maintenanceVmName, provision, {
          config,
          failureCode: MaintainExit.provisionFailed,
          onOutput: progress.output,
        }),
      );
    }
    if (request.yes && provision) {
      progress.stage("Powering the maintenance VM off (sudo poweroff)");
      await session.powerOff();
    } else {
      progress.info("The maintenance VM is up. Work in it with: virtdev ssh maintenance");
      progress.info("When you are done, power it off from inside: sudo poweroff");
      progress.info("To abort (the base stays as it is): virtdev stop maintenance, or Ctrl-C here.");
    }
    await session.awaitCleanEnd();

    if (inventory) {
      await session.boot("Booting the updated base again for the inventory");
      const after = await session.inventory(inventory);
      await session.powerOff();
      await session.awaitCleanEnd();
      progress.diff(await _diff(vm.dir, before ?? "", after));
    }

    const stranded = await projectsOnBase(store, generations.from);
    if (stranded.length > 0) {
      progress.warn(
        `The reseal leaves ${stranded.join(", ")} on generation ${generations.from} (stale). Their base is kept under ${
          store.keptBase(generations.from).dir
        } until each is recreated, detached or destroyed; 'virtdev start --stale' boots one there to back it up.`,
      );
    }
    if (!request.yes) {
      if (!await session.abortable(options.confirm())) {
        throw new VirtdevError("The reseal was declined; the base is unchanged.", {
          exitCode: MaintainExit.declined,
          hint: "Run 'virtdev maintain' again when you want to update the base.",
        });
      }
    }
    progress.stage("Checking image integrity");
    if (!await checkImage(store.maintenance.systemImage)) {
      throw new VirtdevError("The maintained system disk fails 'qemu-img check'; the base is unchanged.", {
        exitCode: MaintainExit.systemCheckFailed,
      });
    }
    if (!await checkImage(store.maintenance.homeImage)) {
      throw new VirtdevError("The maintained home disk fails 'qemu-img check'; the base is unchanged.", {
        exitCode: MaintainExit.homeCheckFailed,
      });
    }
    progress.stage(`Resealing the base (generation ${generations.from} → ${generations.to})`);
    await swapInMaintenance(store, generations);
  } catch (error) {
    await session.discard();
    throw error;
  }
  await _removeIfPresent(vm.dir);
  const base = await readGeneration(store.base.generation);
  const outdated: string[] = [];
  for (const name of await store.listProjects()) {
    if (isStale(await readGeneration(store.project(name).generation), base)) outdated.push(name);
  }
  return { ...generations, outdated };
}

/** The checks before a session: a whole base, the key, no VM on its disks. */
async function _preflight(store: Store, config: Config): Promise<void> {
  if (!await pathExists(store.base.dir)) {
    throw new VirtdevError(`There is no sealed base: ${store.base.dir} does not exist.`, {
      exitCode: MaintainExit.noBase,
      hint: "Install and seal one first: 'virtdev install --image <cloud image>', then 'virtdev seal'.",
    });
  }
  for (const file of baseFileNames) {
    if (!await pathExists(join(store.base.dir, file))) {
      throw new VirtdevError(`The base is incomplete: ${file} is missing in ${store.base.dir}.`, {
        exitCode: MaintainExit.baseFileMissing,
        hint: "The base is damaged; reinstall it ('virtdev nuke', then install and seal).",
      });
    }
  }
  resolveFirmware(config);
  await requireKey(config.sshKey);
  const vm = store.maintenanceVm();
  const status = await inspectVm(vm);
  if (status.state !== "stopped") {
    throw new VirtdevError(`A maintenance VM from an earlier session is still running (PID ${status.pid}).`, {
      exitCode: MaintainExit.orphan,
      hint: "End it with 'virtdev stop maintenance', then run 'virtdev maintain' again.",
    });
  }
  const running: string[] = [];
  const suspended: string[] = [];
  for (const name of await store.listProjects()) {
    const state = (await inspectVm(store.project(name))).state;
    if (state === "suspended") suspended.push(name);
    else if (state !== "stopped") running.push(name);
  }
  // A reseal leaves them on a kept base with rewritten headers: their memory would no longer fit their disks.
  if (suspended.length) throw suspendedProjectsError(suspended, "maintain the base");
  if (running.length) {
    throw new VirtdevError(`Project VMs are running: ${running.join(", ")}.`, {
      exitCode: MaintainExit.projectsRunning,
      hint: [
        "Their disks are backed by the base that maintain replaces.",
        `Stop them first: ${running.map((name) => `virtdev stop ${name}`).join("; ")}`,
      ],
    });
  }
  // What a session that died (SIGKILL, a power loss) left: never resealable,
  // since no proof of its end exists; the base was never touched.
  for (const leftover of [store.maintenance.dir, vm.dir]) await _removeIfPresent(leftover);
}

/** One maintenance session's VM boots. */
class _Session {
  readonly #store: Store;
  readonly #config: Config;
  readonly #env: Environment;
  readonly #progress: MaintainProgress;
  readonly #signal: AbortSignal | undefined;
  #token = "";

  constructor(
    store: Store,
    options: {
      readonly config: Config;
      readonly env: Environment;
      readonly progress: MaintainProgress;
      readonly signal?: AbortSignal;
    },
  ) {
    this.#store = store;
    this.#config = options.config;
    this.#env = options.env;
    this.#progress = options.progress;
    this.#signal = options.signal;
  }

  /** Boots the VM and waits for SSH. */
  async boot(what: string): Promise<void> {
    this.#checkAbort();
    const vm = this.#store.maintenanceVm();
    this.#token = crypto.randomUUID();
    await _removeIfPresent(vm.shutdownProof);
    this.#progress.stage(what);
    const started = await startMaintenanceVm(this.#store, {
      config: this.#config,
      env: this.#env,
      reporter: this.#progress,
      shutdownWatch: { token: this.#token },
    });
    this.#progress.info(`Waiting for SSH on 127.0.0.1:${started.port}...`);
    try {
      await this.abortable(waitForGuest(this.#store, maintenanceVmName, { config: this.#config }));
    } catch (error) {
      if (!(error instanceof VirtdevError) || error.exitCode === MaintainExit.interrupted) throw error;
      throw new VirtdevError(`The maintenance VM did not come up: ${error.message}`, {
        exitCode: MaintainExit.sshFailed,
        hint: [...error.hints, "The base is unchanged."],
        cause: error,
      });
    }
  }

  /** Runs the inventory hook and returns its output. */
  async inventory(path: string): Promise<string> {
    this.#progress.stage(`Taking the inventory (${path})`);
    const { target } = await requireRunningGuest(this.#store, maintenanceVmName, {
      config: this.#config,
      notRunningCode: MaintainExit.inventoryFailed,
    });
    const result = await this.abortable(runTool("ssh", sshArguments(target, ["bash", "-s"]), {
      stdin: await Deno.readFile(path),
      allowFailure: true,
      maxCapture: _maxInventoryChars,
    }));
    if (result.code !== 0) {
      throw new VirtdevError(`The inventory hook ${path} failed with exit ${result.code}.`, {
        exitCode: MaintainExit.inventoryFailed,
        hint: "The base is unchanged. Fix the hook, or run with --no-inventory.",
      });
    }
    return result.stdout;
  }

  /** Asks the guest to power itself off. */
  async powerOff(): Promise<void> {
    const { target } = await requireRunningGuest(this.#store, maintenanceVmName, {
      config: this.#config,
      notRunningCode: MaintainExit.notClean,
    });
    // The connection drops as the guest goes down: its exit code says nothing.
    await this.abortable(runTool("ssh", sshArguments(target, ["sudo", "poweroff"], { batch: true }), {
      allowFailure: true,
      maxCapture: 4096,
    }));
  }

  /**
   * Waits, without a time limit (the user works meanwhile), for the VM to
   * end, then requires the proof of a guest power-off.
   */
  async awaitCleanEnd(): Promise<void> {
    const vm = this.#store.maintenanceVm();
    let told: string | undefined;
    for (let status = await inspectVm(vm); status.pid !== undefined; status = await inspectVm(vm)) {
      this.#checkAbort();
      // A guest QEMU paused (a full host disk) waits for a person: say so once, not silently.
      if (status.halt && status.halt.state !== told) {
        told = status.halt.state;
        this.#progress.warn(`the maintenance VM is paused: ${status.halt.reason}.`);
        for (const hint of haltHints(status.halt, maintenanceVmName)) this.#progress.info(hint);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // QEMU ended the boot itself (a KVM internal error, a panic): its reason says more than the events.
    const halt = await readHaltRecord(vm);
    // The agent writes QEMU's exit just after QEMU has gone.
    let proof = await readShutdownProof(vm.shutdownProof);
    for (let i = 0; i < 50 && proof?.token === this.#token && proof.qemuExit === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      proof = await readShutdownProof(vm.shutdownProof);
    }
    const verdict: ShutdownVerdict = judgeShutdown(proof, this.#token);
    if (!verdict.clean) {
      const code = verdict.why === "aborted"
        ? MaintainExit.aborted
        : verdict.why === "panicked"
        ? MaintainExit.panicked
        : MaintainExit.notClean;
      const unchanged = "The base and its generation are unchanged; the maintenance copy is removed.";
      if (halt?.ends) {
        throw new VirtdevError(`The maintenance VM stopped running: ${halt.reason}; the base is not resealed.`, {
          exitCode: halt.state === "guest-panicked" ? MaintainExit.panicked : MaintainExit.notClean,
          hint: [...haltHints(halt, maintenanceVmName).slice(0, 1), unchanged],
        });
      }
      throw new VirtdevError(
        verdict.why === "aborted"
          ? `The maintenance session was aborted: ${verdict.detail}.`
          : `Not a clean power-off by the guest, so the base is not resealed: ${verdict.detail}.`,
        { exitCode: code, hint: unchanged },
      );
    }
    this.#progress.info("The guest powered itself off cleanly.");
    // What it handed over as it powered off: the kernel its projects boot directly after the reseal.
    const exportDisk = maintenanceBootExport(this.#store);
    if (await pathExists(exportDisk)) {
      const taken = await importBootExport(exportDisk, this.#store.maintenance.boot);
      if (!taken) {
        this.#progress.info("It handed over no kernel: projects boot through the UEFI firmware after the reseal.");
      } else {
        this.#progress.info("It handed over its kernel: projects boot it directly after the reseal.");
        if (!taken.kernel) {
          this.#progress.warn(`the maintained base handed over its kernel, but ${packedKernelNote}`);
        }
      }
    }
  }

  /** Resolves with `work`, or rejects as soon as the session is aborted. */
  abortable<T>(work: Promise<T>): Promise<T> {
    const signal = this.#signal;
    if (!signal) return work;
    this.#checkAbort();
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(_interrupted());
      signal.addEventListener("abort", onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  /** Ends the VM if it runs and removes the maintenance copy and the virtual project. */
  async discard(): Promise<void> {
    const vm = this.#store.maintenanceVm();
    if ((await inspectVm(vm)).pid !== undefined) {
      this.#progress.info("Stopping the maintenance VM...");
      await stopProject(this.#store, maintenanceVmName, {
        stopTimeout: this.#config.stopTimeout,
        reporter: this.#progress,
      }).catch((error) => this.#progress.warn(`could not stop the maintenance VM: ${error}`));
    }
    // Its disks are about to go: a QEMU that outlived SIGTERM gets SIGKILL.
    const left = (await inspectVm(vm)).pid;
    if (left !== undefined) {
      await signalProcess(left, "KILL");
      for (let i = 0; i < 100 && (await inspectVm(vm)).pid !== undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await _removeIfPresent(this.#store.maintenance.dir);
    if ((await inspectVm(vm)).pid === undefined) await _removeIfPresent(vm.dir);
  }

  #checkAbort(): void {
    if (this.#signal?.aborted) throw _interrupted();
  }
}

/** Removes `path` (recursively); one that is already gone is fine. */
async function _removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

function _interrupted(): VirtdevError {
  return new VirtdevError("Maintenance interrupted.", {
    exitCode: MaintainExit.interrupted,
    hint: "The base and its generation are unchanged; the maintenance copy is removed.",
  });
}

/** `diff -u` of the two inventories, labelled before and after. */
async function _diff(dir: string, before: string, after: string): Promise<string> {
  const a = join(dir, "inventory.before");
  const b = join(dir, "inventory.after");
  await Deno.writeTextFile(a, before, { mode: privateFileMode });
  await Deno.writeTextFile(b, after, { mode: privateFileMode });
  const result = await runTool("diff", ["-u", "--label", "before", "--label", "after", a, b], {
    allowFailure: true,
    missingHint: "Install diffutils.",
  });
  if (result.code > 1) throw new VirtdevError(`diff failed: ${result.stderr.trim()}`, { exitCode: 70 });
  return result.code === 0 ? "The inventory is unchanged.\n" : result.stdout;
}
