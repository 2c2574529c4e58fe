/**
 * Booting a project straight into the base's kernel, past the UEFI
 * firmware and the boot loader (`-kernel`, `-initrd`, `-append` on
 * SeaBIOS).
 *
 * The files come from the base's own installation or maintenance guest,
 * never from a project: at its power-off, the guest contract writes its
 * default kernel, initramfs, command line and their identity as a tar
 * onto a raw "export" disk the host attached for it (`boot-files export`),
 * and the host takes them into the base's `boot/` (bounded, by name), and
 * unpacks the kernel and initramfs beside them where it can
 * (`boot_unpack.ts`).
 *
 * A project whose own kernel changed (an update inside the project) must
 * not boot the base's: the direct boot passes the identity's hash as
 * `virtdev.boot=`, the guest compares it with its own default kernel at
 * boot and at shutdown, and says `VIRTDEV-BOOT-DIVERGED` on its console.
 * The host agent then marks the project, which boots through its firmware
 * and boot loader from the next start on.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { readAt } from "../store/read_at.ts";
import { privateDirectoryMode, readOnlyFileMode } from "../store/file_modes.ts";
import type { BasePaths } from "../store/store.ts";
import { kernelOptions } from "../guest/guest_contract.ts";
import { unpackBootFiles, unpackedInitrdName, unpackedKernelName } from "./boot_unpack.ts";

/** The export disk's size: a sparse file, so only what the guest writes takes room. */
export const bootExportBytes = 1024 * 1024 * 1024;

/** The files of a boot export, and the most each may hold. */
const _entries: Readonly<Record<string, number>> = {
  id: 1024,
  cmdline: 4096,
  vmlinuz: 256 * 1024 * 1024,
  initrd: 768 * 1024 * 1024,
};

/** The base's kept boot files, ready for QEMU. */
export interface KeptBoot {
  readonly kernel: string;
  readonly initrd: string;
  /** The guest's command line as it booted, without the boot loader's own words. */
  readonly cmdline: string;
  /** The first 16 hex digits of the identity's SHA-256: what the guest compares its own with. */
  readonly idHash: string;
}

/** What people read when a kept kernel stays packed. */
export const packedKernelNote =
  "its kernel stays packed (none of lz4, zstd, xz, gzip, bzip2 could unpack it, or it has no PVH entry): direct boots unpack it in the guest, some 0.5 s slower under TCG.";

/** The base's boot files, when all are there and read as expected. */
export async function readKeptBoot(base: Pick<BasePaths, "boot">): Promise<KeptBoot | undefined> {
  const file = (name: string) => join(base.boot, name);
  try {
    for (const name of ["vmlinuz", "initrd"]) {
      if (!await _isFilled(file(name))) return undefined;
    }
    const cmdline = (await Deno.readTextFile(file("cmdline"))).trim();
    const id = await Deno.readFile(file("id"));
    if (!_isCommandLine(cmdline) || id.length === 0) return undefined;
    // What the import could unpack boots faster; a base kept before that boots its packed files.
    const [kernel, initrd] = await Promise.all([
      _isFilled(file(unpackedKernelName)).then((ok) => file(ok ? unpackedKernelName : "vmlinuz")),
      _isFilled(file(unpackedInitrdName)).then((ok) => file(ok ? unpackedInitrdName : "initrd")),
    ]);
    return { kernel, initrd, cmdline, idHash: await _hash16(id) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The `-append` of a direct boot: the guest's own command line, the contract's options, and the identity's hash. */
export function directKernelAppend(kept: KeptBoot): string {
  const words = kept.cmdline.split(/\s+/).filter((word) => word !== "" && !word.startsWith("virtdev.boot="));
  for (const option of kernelOptions.split(" ")) if (!words.includes(option)) words.push(option);
  return [...words, `virtdev.boot=${kept.idHash}`].join(" ");
}

/** Makes an empty export disk at `path` (sparse). */
export async function createBootExportDisk(path: string): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
  await file.truncate(bootExportBytes);
}

/**
 * Takes the boot files the guest wrote onto the export disk `disk` into
 * `target` (replacing what was there), read as a tar of exactly the four
 * known names, each within its limit; anything else ends the reading.
 *
 * @returns which of the taken kernel and initramfs were also unpacked
 * (`boot_unpack.ts`), or undefined when no complete set was taken.
 */
export async function importBootExport(
  disk: string,
  target: string,
): Promise<{ readonly kernel: boolean; readonly initrd: boolean } | undefined> {
  const staging = `${target}.partial`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { mode: privateDirectoryMode });
  const found = new Set<string>();
  try {
    using file = await Deno.open(disk, { read: true });
    let offset = 0;
    for (let entry = 0; entry < Object.keys(_entries).length; entry++) {
      const header = await readAt(file, offset, 512);
      if (header === undefined || header.every((byte) => byte === 0)) break;
      const name = _field(header, 0, 100);
      const size = Number.parseInt(_field(header, 124, 12).trim() || "x", 8);
      const type = String.fromCharCode(header[156]);
      const limit = _entries[name];
      if (limit === undefined || found.has(name) || !(type === "0" || header[156] === 0)) break;
      if (!Number.isSafeInteger(size) || size < 0 || size > limit || !_checksumOk(header)) break;
      await _copyOut(file, offset + 512, size, join(staging, name));
      found.add(name);
      offset += 512 + Math.ceil(size / 512) * 512;
    }
    if (found.size !== Object.keys(_entries).length) return undefined;
    if (!_isCommandLine((await Deno.readTextFile(join(staging, "cmdline"))).trim())) return undefined;
    for (const name of found) await Deno.chmod(join(staging, name), readOnlyFileMode);
    const unpacked = await unpackBootFiles(staging);
    const aside = `${target}.old`;
    await Deno.remove(aside, { recursive: true }).catch(() => {});
    await Deno.rename(target, aside).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await Deno.rename(staging, target);
    await Deno.remove(aside, { recursive: true }).catch(() => {});
    return unpacked;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

async function _isFilled(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && info.size > 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A kernel command line we pass on: printable ASCII, one line, not too long, with a root. */
function _isCommandLine(text: string): boolean {
  return text.length > 0 && text.length <= 4096 && /^[\x20-\x7e]+$/.test(text) && /(^| )root=/.test(text);
}

async function _hash16(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 8), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A NUL-terminated header field, as text. */
function _field(header: Uint8Array, start: number, length: number): string {
  const bytes = header.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end === -1 ? bytes : bytes.subarray(0, end));
}

/** The header checksum: the sum of its bytes with the checksum field read as spaces. */
function _checksumOk(header: Uint8Array): boolean {
  const stored = Number.parseInt(_field(header, 148, 8).trim() || "x", 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return stored === sum;
}

async function _copyOut(file: Deno.FsFile, offset: number, size: number, to: string): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  using out = await Deno.open(to, { write: true, createNew: true, mode: 0o600 });
  const buffer = new Uint8Array(1 << 20);
  for (let left = size; left > 0;) {
    const n = await file.read(buffer.subarray(0, Math.min(buffer.length, left)));
    if (n === null) throw new Error("the export ends inside a file");
    for (let written = 0; written < n;) written += await out.write(buffer.subarray(written, n));
    left -= n;
  }
}
