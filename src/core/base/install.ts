/**
 * `install`: turns a plain cloud image into an installation that `seal`
 * makes the base. The image is copied and resized, a home disk is made, and
 * the VM boots once with a cloud-init seed (served by virtdev on loopback)
 * that applies the guest contract and powers off.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { copyFileAtomic } from "../store/atomic_write.ts";
import { type Config, resolveFirmware } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { installedLine, renderMetaData, renderUserData } from "../guest/guest_contract.ts";
import { createImage } from "../vm/images.ts";
import { exitCodeOf, runTool, spawnTool } from "../store/process.ts";
import { maxSocketPath, qemuArguments } from "../vm/qemu_args.ts";
import { createBootExportDisk, importBootExport, packedKernelNote } from "../vm/direct_boot.ts";
import { QmpClient } from "../vm/qmp.ts";
import { haltAfterStop, type VmHalt } from "../vm/vm_halt.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";
import { FileFollower, MarkerScanner, readFileTail } from "../vm/console_log.ts";
import { ensurePrivateDirectory, privateFileMode } from "../store/file_modes.ts";
import { startSeedServer } from "./seed_server.ts";
import { publicKeyOf, requireKey } from "../guest/ssh_key.ts";
import { pathExists, type Store } from "../store/store.ts";
import { qemuInstallHint, qemuProgram } from "../vm/supervisor.ts";
import type { Reporter } from "../store/reporter.ts";

/** Exit codes of `install`. */
export const InstallExit = {
  imageMissing: 3,
  installationExists: 6,
  systemExists: 7,
  imageUnusable: 8,
  qemuFailed: 9,
  timeout: 10,
  contractNotApplied: 11,
  /** QEMU stopped running the guest (a KVM internal error, a kernel panic, a failed disk write). */
  halted: 12,
  interrupted: 130,
} as const;

/** The stages an install goes through, for progress display. */
export type InstallStage = "copy" | "home" | "boot" | "contract" | "poweroff";

/** How install reports progress. */
export interface InstallProgress extends Reporter {
  /** A stage begins; the previous one (if any) has ended. */
  stage(stage: InstallStage): void;
  /** The install failed; `consoleTail` holds the last console lines. */
  failed(consoleTail: readonly string[]): void;
}

/** How many console lines a failure shows. */
export const consoleTailLines = 30;

/** What a finished install produced. */
export interface InstallResult {
  readonly installationDir: string;
  readonly consoleLog: string;
  readonly seconds: number;
}

/**
 * What to install from: a cloud image (the contract goes in by cloud-init)
 * or the Arch installer ISO that `iso` builds (its installer applies the
 * contract itself).
 */
export type InstallSource = { readonly image: string } | { readonly iso: string };

/** Installs from `source` as the new installation. Call under the store lock. */
export async function installBase(
  store: Store,
  source: InstallSource,
  options: {
    readonly config: Config;
    readonly homeSize?: number;
    readonly accel: "kvm" | "tcg";
    readonly progress: InstallProgress;
  },
): Promise<InstallResult> {
  const started = performance.now();
  const { config, progress } = options;
  const probed = "image" in source ? await _probeImage(source.image) : await _probeIso(source.iso);
  const firmware = resolveFirmware(config);
  if (await pathExists(store.installation.dir)) {
    throw new VirtdevError(`An installation already exists: ${store.installation.dir}.`, {
      exitCode: InstallExit.installationExists,
      hint: "Seal it with 'virtdev seal', or remove the directory to install again.",
    });
  }
  if (await pathExists(store.base.dir)) {
    throw new VirtdevError(`A sealed base already exists: ${store.base.dir}.`, {
      exitCode: InstallExit.systemExists,
      hint: "A base cannot be replaced in place yet: start over with 'virtdev nuke' (backups go too; copy them first).",
    });
  }
  await requireKey(config.sshKey);
  const publicKey = await publicKeyOf(config.sshKey);

  await ensurePrivateDirectory(store.root);
  await _removeAbandonedInstalls(store);
  const work = join(store.root, `.installation-${Deno.pid}`);
  await ensurePrivateDirectory(work);
  await ensurePrivateDirectory(config.cache);
  const consoleLog = join(config.cache, "install-console.log");
  await Deno.writeTextFile(consoleLog, "", { mode: privateFileMode });
  let succeeded = false;
  try {
    const system = join(work, "system.qcow2");
    progress.stage("copy");
    // convert keeps the virtual size, so the probe's answer still holds.
    if ("image" in source) {
      await runTool("qemu-img", ["convert", "-f", probed.format, "-O", "qcow2", source.image, system]);
    } else {
      await createImage(system, config.systemDiskSize);
    }
    const virtualSize = "image" in source ? probed.virtualSize : config.systemDiskSize;
    if (virtualSize < config.systemDiskSize) {
      await runTool("qemu-img", ["resize", "-q", system, String(config.systemDiskSize)]);
    } else if (virtualSize > config.systemDiskSize) {
      progress.warn(
        "the image is larger than VIRTDEV_SYSTEM_DISK_SIZE; it keeps its own size (disks are never shrunk).",
      );
    }
    progress.stage("home");
    await createImage(join(work, "home.qcow2"), options.homeSize ?? config.homeDiskSize);
    await copyFileAtomic(firmware.vars, join(work, "nvram"));

    // The ISO's installer carries the contract; a cloud image gets it from the seed.
    await using seed = "image" in source
      ? startSeedServer({
        "meta-data": renderMetaData({ instanceId: `virtdev-install-${crypto.randomUUID()}` }),
        "user-data": renderUserData({ publicKey, timezone: config.timezone }),
        "vendor-data": "",
      })
      : undefined;
    // A unix socket path is short (108 bytes): a deep store goes unwatched, and waits for its timeout.
    const watchSocket = join(work, "qmp-watch.sock");
    const watched = new TextEncoder().encode(watchSocket).length <= maxSocketPath;
    // The installed system hands its kernel over on this disk as it powers off (a cloud image's only).
    const exportDisk = join(work, "boot-export.raw");
    if ("image" in source) await createBootExportDisk(exportDisk);
    const args = qemuArguments({
      name: "virtdev-install",
      exportDisk: "image" in source ? exportDisk : undefined,
      accel: options.accel,
      memoryMiB: config.vmMemoryMiB,
      cpus: config.vmCpus,
      firmware: { code: firmware.code, nvram: join(work, "nvram") },
      disks: { system, home: join(work, "home.qcow2") },
      smbiosSerial: seed?.smbiosSerial,
      cdrom: "iso" in source ? source.iso : undefined,
      serialLog: consoleLog,
      noReboot: true,
      eventSocket: watched ? watchSocket : undefined,
    });
    progress.stage("boot");
    seed?.userDataFetched.then(() => progress.stage("contract"));
    const { confirmed } = await bootInstallVm(args, {
      consoleLog,
      timeoutSeconds: config.installTimeout,
      progress,
      watchSocket: watched ? watchSocket : undefined,
    });
    await Deno.remove(watchSocket).catch(() => {});
    if (!confirmed) {
      throw new VirtdevError("The install VM powered off without confirming that the guest contract was applied.", {
        exitCode: InstallExit.contractNotApplied,
        hint: [
          ("image" in source
            ? "Check that the image is a cloud image with cloud-init, and look at the console log: "
            : "The installer failed; look at the console log: ") + consoleLog,
        ],
      });
    }
    if ("image" in source) {
      const taken = await importBootExport(exportDisk, join(work, "boot"));
      await Deno.remove(exportDisk);
      if (!taken) {
        progress.warn("the installed system handed over no kernel: its projects boot through the UEFI firmware.");
      } else if (!taken.kernel) {
        progress.warn(`the installed system handed over its kernel, but ${packedKernelNote}`);
      }
    }
    await Deno.rename(work, store.installation.dir);
    succeeded = true;
    return { installationDir: store.installation.dir, consoleLog, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    progress.failed(_tail((await readFileTail(consoleLog, _tailBytes)) ?? "", consoleTailLines));
    throw error;
  } finally {
    if (!succeeded) await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** How much of the console's end a failure reads for its tail. */
const _tailBytes = 64 * 1024;

/**
 * Boots the install VM in the foreground until it powers off, following
 * its console log as it grows (each byte read once) for the line that
 * confirms the contract.
 *
 * @throws {VirtdevError} 12 within moments of QEMU stopping the guest
 *   (with `watchSocket`), 10 at the timeout, 9 when QEMU fails, 130 on
 *   Ctrl-C.
 */
export async function bootInstallVm(
  args: readonly string[],
  options: {
    readonly consoleLog: string;
    readonly timeoutSeconds: number;
    readonly progress: InstallProgress;
    /** QEMU's event socket, watched for a guest that stops running. */
    readonly watchSocket?: string;
  },
): Promise<{ readonly confirmed: boolean }> {
  const child = spawnTool(qemuProgram, args, { missingHint: qemuInstallHint });
  // A guest QEMU stopped (KVM cannot run it, it panicked, a write failed) would otherwise sit until the timeout.
  let halted: VmHalt | undefined;
  const watching = options.watchSocket === undefined
    ? Promise.resolve()
    : _watchHalts(options.watchSocket, child.status, (halt) => {
      halted = halt;
      child.kill("SIGTERM");
    });
  const stderr = new Response(child.stderr).text();
  const stdout = new Response(child.stdout).text();
  let interrupted = false;
  const onInterrupt = (): void => {
    interrupted = true;
    child.kill("SIGTERM");
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
  }, options.timeoutSeconds * 1000);
  // Power-off starts when the contract is confirmed on the console.
  const follower = new FileFollower(options.consoleLog);
  const scanner = new MarkerScanner([installedLine]);
  let confirmed = false;
  const scan = async (): Promise<void> => {
    for (let chunk = await follower.read(); chunk.length > 0; chunk = await follower.read()) {
      if (!confirmed && scanner.push(chunk).length > 0) {
        confirmed = true;
        options.progress.stage("poweroff");
      }
    }
  };
  let scanning = Promise.resolve();
  const poller = setInterval(() => scanning = scanning.then(scan), 500);
  try {
    const status = await child.status;
    const message = (await stderr).trim() || (await stdout).trim();
    if (interrupted) {
      throw new VirtdevError("Install interrupted; nothing was kept.", { exitCode: InstallExit.interrupted });
    }
    await watching;
    if (halted) {
      throw new VirtdevError(`The install VM stopped: ${halted.reason}.`, {
        exitCode: InstallExit.halted,
        hint: halted.state === "internal-error"
          ? "KVM cannot run the UEFI firmware on this host (some nested hosts run SeaBIOS only): install with VIRTDEV_ACCEL=tcg."
          : halted.state === "io-error"
          ? "Free space on the disk that holds VIRTDEV_HOME, then install again."
          : "Look at the console log's last lines above, then install again.",
      });
    }
    if (timedOut) {
      throw new VirtdevError(`The install VM did not power off within ${options.timeoutSeconds}s.`, {
        exitCode: InstallExit.timeout,
        hint: "Raise VIRTDEV_INSTALL_TIMEOUT (it is slow without KVM), or check the console log.",
      });
    }
    const code = exitCodeOf(status);
    if (code !== 0) {
      throw new VirtdevError(`QEMU exited with ${code} during the install.${message ? `\n${message}` : ""}`, {
        exitCode: InstallExit.qemuFailed,
      });
    }
    clearInterval(poller);
    await scanning.then(scan);
    return { confirmed };
  } finally {
    clearTimeout(timer);
    clearInterval(poller);
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/**
 * Watches QEMU's event socket until QEMU ends, and calls `onHalt` once
 * when a `STOP` leaves the guest halted (any halt: an install cannot wait
 * for a person to resume it).
 */
async function _watchHalts(
  socket: string,
  ended: Promise<unknown>,
  onHalt: (halt: VmHalt) => void,
): Promise<void> {
  let over = false;
  ended.then(() => over = true);
  let client: QmpClient | undefined;
  // QEMU makes the socket as it starts.
  while (client === undefined && !over) {
    client = await QmpClient.connect(socket).catch(() => undefined);
    if (client === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (client === undefined) return;
  try {
    for (let event = await client.nextEvent(); event !== undefined; event = await client.nextEvent()) {
      if (event.event !== "STOP") continue;
      const halt = await haltAfterStop(client);
      if (halt) {
        onHalt(halt);
        return;
      }
    }
  } catch {
    // QEMU went away mid-answer: its exit tells the rest.
  } finally {
    client.close();
  }
}

/** Checks that the installer ISO is there. */
async function _probeIso(iso: string): Promise<{ readonly format: string; readonly virtualSize: number }> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(iso);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new VirtdevError(`Installer ISO not found: ${iso}.`, {
      exitCode: InstallExit.imageMissing,
      hint: "Build it with 'virtdev iso' (on Arch, with archiso), or install from a cloud image with --image.",
    });
  }
  if (!info.isFile) {
    throw new VirtdevError(`Not a file: ${iso}.`, { exitCode: InstallExit.imageUnusable });
  }
  return { format: "raw", virtualSize: info.size };
}

/** Returns the image's format and size, or fails with the install's codes. */
async function _probeImage(image: string): Promise<{ readonly format: string; readonly virtualSize: number }> {
  // qemu-img reads the image, not virtdev: the image may be anywhere.
  const result = await runTool("qemu-img", ["info", "--output=json", image], { allowFailure: true });
  if (result.code !== 0) {
    const missing = /No such file or directory/.test(result.stderr);
    throw new VirtdevError(
      missing ? `Image not found: ${image}.` : `Not a usable disk image: ${image}.`,
      {
        exitCode: missing ? InstallExit.imageMissing : InstallExit.imageUnusable,
        hint: missing
          ? "Download a cloud image (qcow2 or raw), e.g. Debian's genericcloud or Arch's arch-boxes cloudimg."
          : result.stderr.trim().split("\n").slice(-1)[0] || "qemu-img could not read it.",
      },
    );
  }
  const { format, "virtual-size": virtualSize } = JSON.parse(result.stdout) as {
    format: string;
    "virtual-size": number;
  };
  if (format !== "qcow2" && format !== "raw") {
    throw new VirtdevError(`Unsupported image format '${format}': ${image}.`, {
      exitCode: InstallExit.imageUnusable,
      hint: "Use a qcow2 or raw cloud image.",
    });
  }
  return { format, virtualSize };
}

async function _removeAbandonedInstalls(store: Store): Promise<void> {
  for await (const entry of Deno.readDir(store.root)) {
    if (/^\.installation-\d+$/.test(entry.name)) {
      await Deno.remove(join(store.root, entry.name), { recursive: true }).catch(() => {});
    }
  }
}

function _tail(text: string, lines: number): string[] {
  // The guest's escape sequences and control bytes are not for our terminal.
  return text.split("\n").map((line) => stripTerminalControls(line)).filter((line) => line.trim() !== "").slice(-lines);
}
