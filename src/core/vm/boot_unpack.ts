/**
 * The base's kept kernel and initramfs, unpacked once on the host so that
 * no direct boot spends its first second decompressing them in the guest.
 *
 * - The kernel: a bzImage carries the real kernel compressed, with a
 *   decompressor in front. Its payload, unpacked, is an ELF `vmlinux`;
 *   where it has a PVH entry (Xen's `PHYS32_ENTRY` note, as Debian's and
 *   Arch's kernels do), QEMU starts it in place. Under TCG that skipped
 *   0.3–0.6 s of a boot here.
 * - The initramfs: one compressed cpio stream (as mkinitcpio and
 *   initramfs-tools write it by default) becomes the plain cpio; the kernel
 *   reads either. About 0.15 s under TCG.
 *
 * The files come from the base's own installation or maintenance guest,
 * and each unpacking is bounded: the host's decompressor (a program of
 * its own) is stopped past a limit, and what it writes must check out
 * (the size the kernel recorded, an ELF with the PVH note, a cpio);
 * otherwise the packed file is used as it is.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { readAt } from "../store/read_at.ts";
import { readOnlyFileMode } from "../store/file_modes.ts";
import { spawnTool } from "../store/process.ts";

/** The unpacked kernel's name beside `vmlinuz` in the base's `boot/`. */
export const unpackedKernelName = "vmlinux";
/** The unpacked initramfs's name beside `initrd`. */
export const unpackedInitrdName = "initrd.cpio";

/** The most an unpacked kernel and initramfs may take. */
const _limits = { kernel: 256 * 1024 * 1024, initrd: 1024 * 1024 * 1024 } as const;

/** Compressed formats by their first bytes, and the host program (argv) that reads each from stdin. */
const _formats: readonly { readonly magic: readonly number[]; readonly argv: readonly string[] }[] = [
  { magic: [0x1f, 0x8b], argv: ["gzip", "-dc"] },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], argv: ["xz", "-dc"] },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], argv: ["zstd", "-dcq"] },
  { magic: [0x02, 0x21, 0x4c, 0x18], argv: ["lz4", "-dcq"] },
  { magic: [0x42, 0x5a, 0x68], argv: ["bzip2", "-dc"] },
];

/**
 * Writes `vmlinux` and `initrd.cpio` into `dir` beside its `vmlinuz` and
 * `initrd`, each where it can be unpacked and checks out.
 *
 * @returns which of the two were written.
 */
export async function unpackBootFiles(
  dir: string,
  options: { readonly limits?: { readonly kernel: number; readonly initrd: number } } = {},
): Promise<{ readonly kernel: boolean; readonly initrd: boolean }> {
  const limits = options.limits ?? _limits;
  const kernel = await _unpackKernel(join(dir, "vmlinuz"), join(dir, unpackedKernelName), limits.kernel);
  const initrd = await _unpackInitrd(join(dir, "initrd"), join(dir, unpackedInitrdName), limits.initrd);
  return { kernel, initrd };
}

/** Whether `path` is an x86-64 ELF kernel QEMU can start at its PVH entry. */
export async function isPvhKernel(path: string): Promise<boolean> {
  try {
    using file = await Deno.open(path, { read: true });
    const size = (await file.stat()).size;
    const header = await readAt(file, 0, 64);
    if (header === undefined || !_startsWith(header, [0x7f, 0x45, 0x4c, 0x46, 2, 1])) return false;
    const view = new DataView(header.buffer);
    if (view.getUint16(18, true) !== 62) return false;
    const phoff = Number(view.getBigUint64(32, true));
    const phentsize = view.getUint16(54, true);
    const phnum = view.getUint16(56, true);
    if (phentsize < 56 || phnum > 64 || phoff + phnum * phentsize > size) return false;
    for (let i = 0; i < phnum; i++) {
      const entry = await readAt(file, phoff + i * phentsize, 56);
      if (entry === undefined) return false;
      const ph = new DataView(entry.buffer);
      if (ph.getUint32(0, true) !== 4) continue;
      const offset = Number(ph.getBigUint64(8, true));
      const length = Number(ph.getBigUint64(32, true));
      if (length > 1 << 20 || offset + length > size) return false;
      const notes = await readAt(file, offset, length);
      if (notes !== undefined && _hasPvhNote(notes)) return true;
    }
    return false;
  } catch {
    return false;
  }
}

async function _unpackKernel(packed: string, target: string, limit: number): Promise<boolean> {
  try {
    using file = await Deno.open(packed, { read: true });
    const size = (await file.stat()).size;
    const header = await readAt(file, 0, 0x250);
    if (header === undefined) return false;
    const view = new DataView(header.buffer);
    // The boot protocol's "HdrS", from 2.08 on with the payload's place.
    if (view.getUint32(0x202, true) !== 0x53726448 || view.getUint16(0x206, true) < 0x208) return false;
    const setupSectors = header[0x1f1] === 0 ? 4 : header[0x1f1];
    const start = (setupSectors + 1) * 512 + view.getUint32(0x248, true);
    const length = view.getUint32(0x24c, true);
    if (length <= 4 || start + length > size) return false;
    // The kernel's build appends the unpacked size (32 bits) to the packed payload.
    const tail = await readAt(file, start + length - 4, 4);
    if (tail === undefined) return false;
    const expected = new DataView(tail.buffer).getUint32(0, true);
    if (expected > limit) return false;
    const head = await readAt(file, start, 8);
    const format = head && _formats.find((candidate) => _startsWith(head, candidate.magic));
    if (!format) return false;
    const written = await _decompress(format.argv, { file, start, length: length - 4 }, target, limit);
    if (written !== expected || !await isPvhKernel(target)) return await _drop(target);
    await Deno.chmod(target, readOnlyFileMode);
    return true;
  } catch {
    return await _drop(target);
  }
}

async function _unpackInitrd(packed: string, target: string, limit: number): Promise<boolean> {
  try {
    using file = await Deno.open(packed, { read: true });
    const size = (await file.stat()).size;
    const head = await readAt(file, 0, 8);
    const format = head && _formats.find((candidate) => _startsWith(head, candidate.magic));
    if (!format) return false;
    const written = await _decompress(format.argv, { file, start: 0, length: size }, target, limit);
    // A cpio in the "newc" format, with or without checksums.
    const magic = await _headOf(target, 6);
    if (written === undefined || (magic !== "070701" && magic !== "070702")) return await _drop(target);
    await Deno.chmod(target, readOnlyFileMode);
    return true;
  } catch {
    return await _drop(target);
  }
}

/**
 * Streams `length` bytes of `input` from `start` through the program
 * `argv` into `target`; undefined when it fails or writes past `limit`.
 */
async function _decompress(
  argv: readonly string[],
  input: { readonly file: Deno.FsFile; readonly start: number; readonly length: number },
  target: string,
  limit: number,
): Promise<number | undefined> {
  const child = spawnTool(argv[0], argv.slice(1), { stdin: true });
  const feeding = (async () => {
    const writer = child.stdin.getWriter();
    try {
      await input.file.seek(input.start, Deno.SeekMode.Start);
      const buffer = new Uint8Array(1 << 20);
      for (let left = input.length; left > 0;) {
        const n = await input.file.read(buffer.subarray(0, Math.min(buffer.length, left)));
        if (n === null) break;
        await writer.write(buffer.slice(0, n));
        left -= n;
      }
      await writer.close();
    } catch {
      // The program stopped reading (it failed, or was stopped past the limit).
    }
  })();
  child.stderr.cancel().catch(() => {});
  let written = 0;
  let over = false;
  {
    using out = await Deno.open(target, { write: true, create: true, truncate: true, mode: 0o600 });
    for await (const chunk of child.stdout) {
      written += chunk.length;
      if (written > limit) {
        over = true;
        try {
          child.kill("SIGKILL");
        } catch {
          // Gone.
        }
        break;
      }
      for (let done = 0; done < chunk.length;) done += await out.write(chunk.subarray(done));
    }
  }
  const status = await child.status;
  await feeding;
  return over || !status.success ? undefined : written;
}

/** `Xen` notes of type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`) in a note segment. */
function _hasPvhNote(notes: Uint8Array): boolean {
  const view = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  const align = (n: number) => Math.ceil(n / 4) * 4;
  for (let at = 0; at + 12 <= notes.length;) {
    const nameSize = view.getUint32(at, true);
    const descSize = view.getUint32(at + 4, true);
    const type = view.getUint32(at + 8, true);
    const name = new TextDecoder().decode(notes.subarray(at + 12, at + 12 + nameSize));
    if (name === "Xen\0" && type === 18 && descSize >= 4) return true;
    const next = at + 12 + align(nameSize) + align(descSize);
    if (next <= at || next > notes.length) return false;
    at = next;
  }
  return false;
}

async function _headOf(path: string, length: number): Promise<string | undefined> {
  using file = await Deno.open(path, { read: true });
  const bytes = await readAt(file, 0, length);
  return bytes && new TextDecoder().decode(bytes);
}

async function _drop(path: string): Promise<false> {
  await Deno.remove(path).catch(() => {});
  return false;
}

function _startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return magic.every((byte, i) => bytes[i] === byte);
}
