/**
 * A suspended VM's saved state: its memory and device state (QEMU's
 * migration stream) in `suspended/memory`, and in `suspended/state.json`
 * what it belongs to. A state is resumed only onto exactly the machine it
 * was taken from: the same disks, untouched since (inode, size, mtime),
 * the same generation, QEMU and firmware, and the same QEMU command line.
 * Anything else would give a running kernel disks that changed under it,
 * which corrupts them; such a state is discarded and the VM boots cold.
 *
 * The directory is written as `suspended.partial/` and renamed into place
 * whole, so a state is either complete or absent. A resume renames it away
 * before the guest runs a single instruction, so it is never used twice.
 *
 * @module
 */
import { syncDirectory, writeFileAtomic } from "../store/atomic_write.ts";
import { privateFileMode } from "../store/file_modes.ts";
import { join } from "../store/path.ts";
import { type ProjectPaths, readOptionalText } from "../store/store.ts";
import type { Readiness } from "./agent_state.ts";

/** What a saved state must match to be resumed. */
export interface SuspendFingerprint {
  /** Each disk and the nvram: inode, size and modification time once QEMU had stopped writing. */
  readonly disks: Readonly<Record<string, _FileStamp>>;
  /** The project's generation file, as text. */
  readonly generation: string;
  /** QEMU's `--version` first line. */
  readonly qemu: string;
  /** The UEFI code the firmware was loaded from. */
  readonly firmware: _FileStamp;
  /** QEMU's command line, the network backend's value left out (the port may move). */
  readonly machine: readonly string[];
  /** The network the guest was configured on (its addresses come from it). */
  readonly network: string;
}

interface _FileStamp {
  readonly path: string;
  readonly ino: number | null;
  readonly size: number;
  readonly mtime: number | null;
}

/** `suspended/state.json`. */
export interface SuspendRecord {
  readonly version: 1;
  /** Which suspend wrote it (the agent's guard compares it). */
  readonly token: string;
  /** When (ISO 8601). */
  readonly savedAt: string;
  /** The SSH port the VM had. */
  readonly port: number;
  /** What the guest had said of its readiness: a resumed guest does not say it again. */
  readonly readiness: Readiness;
  /** The memory file's size in bytes. */
  readonly memoryBytes: number;
  /** Memory the guest used (MemTotal − MemFree), when it could be asked. */
  readonly guestUsedBytes?: number;
  /** The VM's configured memory less what the guest had free (MemFree): what it held, its kernel's page map included. */
  readonly guestHeldBytes?: number;
  readonly fingerprint: SuspendFingerprint;
}

/**
 * What a saved state is: a suspended VM's (`suspended/`, consumed by the
 * resume), or a project's warm image for disposable runs (`template/`,
 * kept, with the overlays of the disposable boot it was taken from).
 */
export type SavedKind = "suspended" | "template";

/** Which saved state a call is about; a suspended VM's unless said. */
export interface KindOption {
  readonly kind?: SavedKind;
}

/** The files of a saved state. */
export interface SuspendFiles {
  readonly dir: string;
  readonly memory: string;
  readonly record: string;
  /** A template's copies of the disposable boot's overlays and nvram, as they were at the save. */
  readonly systemImage: string;
  readonly homeImage: string;
  readonly nvram: string;
}

type _StatePaths = Pick<ProjectPaths, "suspended" | "template">;

/** Where `paths`' committed state of `kind` lives. */
export function suspendFiles(paths: _StatePaths, options: KindOption = {}): SuspendFiles {
  return _filesIn(_dirOf(paths, options));
}

/** Where a save writes before it commits. */
export function partialSuspendFiles(paths: _StatePaths, options: KindOption = {}): SuspendFiles {
  return _filesIn(`${_dirOf(paths, options)}.partial`);
}

function _dirOf(paths: _StatePaths, options: KindOption): string {
  return options.kind === "template" ? paths.template : paths.suspended;
}

function _filesIn(dir: string): SuspendFiles {
  return {
    dir,
    memory: join(dir, "memory"),
    record: join(dir, "state.json"),
    systemImage: join(dir, "system.qcow2"),
    homeImage: join(dir, "home.qcow2"),
    nvram: join(dir, "nvram"),
  };
}

/** The committed state of `paths`, if there is a readable one. */
export async function readSuspendRecord(
  paths: _StatePaths,
  options: KindOption = {},
): Promise<SuspendRecord | undefined> {
  const text = await readOptionalText(suspendFiles(paths, options).record);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as SuspendRecord;
    return value?.version === 1 && typeof value.token === "string" && typeof value.fingerprint === "object"
      ? value
      : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** QEMU's command line with the network backend's value replaced, for comparing machines. */
export function machineOf(args: readonly string[]): string[] {
  const machine: string[] = [];
  for (let i = 0; i < args.length; i++) {
    // How this boot began (a resume's own load) is not the machine.
    if (args[i] === "-S") continue;
    if (args[i] === "-incoming") {
      i++;
      continue;
    }
    machine.push(args[i - 1] === "-netdev" ? "<netdev>" : args[i]);
  }
  return machine;
}

/** The network backend a QEMU command line names (its `-netdev` value up to the first comma, and its socket). */
export function networkOf(args: readonly string[]): string {
  const value = args[args.indexOf("-netdev") + 1] ?? "";
  // The port is in slirp's hostfwd only; the socket path (passt or the filter) says which sits in between.
  return value.replace(/hostfwd=[^,]*/g, "hostfwd");
}

/** The fingerprint of `paths`' machine now, for a QEMU command line `args`. */
export async function fingerprintOf(
  paths: Pick<ProjectPaths, "systemImage" | "homeImage" | "nvram" | "generation">,
  options: { readonly args: readonly string[]; readonly firmwareCode: string; readonly qemuVersion: string },
): Promise<SuspendFingerprint> {
  const disks: Record<string, _FileStamp> = {};
  for (const [name, path] of Object.entries({ system: paths.systemImage, home: paths.homeImage, nvram: paths.nvram })) {
    disks[name] = await _stamp(path);
  }
  return {
    disks,
    generation: (await readOptionalText(paths.generation))?.trim() ?? "",
    qemu: options.qemuVersion,
    firmware: await _stamp(options.firmwareCode),
    machine: machineOf(options.args),
    network: networkOf(options.args),
  };
}

/** What differs between a saved fingerprint and the machine now, in words; empty when they match. */
export function fingerprintDifferences(saved: SuspendFingerprint, now: SuspendFingerprint): string[] {
  const differences: string[] = [];
  for (const [name, stamp] of Object.entries(now.disks)) {
    const was = saved.disks?.[name];
    if (
      !was || was.path !== stamp.path || was.ino !== stamp.ino || was.size !== stamp.size || was.mtime !== stamp.mtime
    ) {
      differences.push(`its ${name === "nvram" ? "firmware variables" : `${name} disk`} changed since the suspend`);
    }
  }
  if (saved.generation !== now.generation) differences.push("its base generation changed");
  if (saved.qemu !== now.qemu) differences.push(`QEMU changed (${saved.qemu} then, ${now.qemu} now)`);
  const firmware = saved.firmware;
  if (
    !firmware || firmware.path !== now.firmware.path || firmware.size !== now.firmware.size ||
    firmware.mtime !== now.firmware.mtime
  ) differences.push("the UEFI firmware changed");
  if (JSON.stringify(saved.machine) !== JSON.stringify(now.machine)) {
    differences.push("its machine changed (memory, CPUs, accelerator or devices)");
  }
  if (saved.network !== now.network) differences.push("its network backend or zone filter changed");
  return differences;
}

async function _stamp(path: string): Promise<_FileStamp> {
  const info = await Deno.stat(path);
  return { path, ino: info.ino, size: info.size, mtime: info.mtime?.getTime() ?? null };
}

/**
 * Writes the record into the partial directory, then renames the directory
 * into place. A template replaces the one before it: that is renamed
 * aside first, so a crash leaves one whole template or none.
 */
export async function commitSuspendState(
  paths: _StatePaths & Pick<ProjectPaths, "dir">,
  record: SuspendRecord,
  options: KindOption = {},
): Promise<void> {
  const partial = partialSuspendFiles(paths, options);
  const target = _dirOf(paths, options);
  await writeFileAtomic(partial.record, `${JSON.stringify(record)}\n`, { mode: privateFileMode });
  await _fsyncFile(partial.memory);
  if (options.kind === "template") await discardSuspendState(paths, options);
  await Deno.rename(partial.dir, target);
  await syncDirectory(paths.dir);
}

/**
 * Removes a saved state: renamed aside first, so that a crash half way
 * never leaves a state that looks whole.
 *
 * @returns whether there was one.
 */
export async function discardSuspendState(paths: _StatePaths, options: KindOption = {}): Promise<boolean> {
  const { had, remove } = await setAsideSuspendState(paths, options);
  await remove();
  return had;
}

/**
 * The first half of {@link discardSuspendState}: once renamed aside, the
 * state is gone for every reader. The removal of its files (some 50 ms for
 * a 250 MiB state) is left to the caller, so that a resume can let its
 * guest run first. What a crash leaves aside goes at the next discard.
 */
export async function setAsideSuspendState(
  paths: _StatePaths,
  options: KindOption = {},
): Promise<{ readonly had: boolean; remove(): Promise<void> }> {
  const dir = _dirOf(paths, options);
  const aside = `${dir}.discarded`;
  const removeAside = () =>
    Deno.remove(aside, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  let had = true;
  try {
    await Deno.rename(dir, aside);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      had = false;
    } else {
      // What an earlier discard left aside (it died before removing it) is in the way of the rename.
      await removeAside();
      await Deno.rename(dir, aside);
    }
  }
  return { had, remove: removeAside };
}

/** Removes what an unfinished save wrote. */
export async function removePartialSuspend(paths: _StatePaths, options: KindOption = {}): Promise<void> {
  await Deno.remove(partialSuspendFiles(paths, options).dir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

async function _fsyncFile(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true });
  await file.sync();
}
