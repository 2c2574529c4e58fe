import assert from "node:assert/strict";
import { join } from "node:path";
import { isPvhKernel, unpackBootFiles } from "../src/core/vm/boot_unpack.ts";
import { readKeptBoot } from "../src/core/vm/direct_boot.ts";
import { withDir } from "./_helpers.ts";

/** An x86-64 ELF with one note segment: Xen's PHYS32_ENTRY (type 18) when `pvh`, else another Xen note. */
function elfKernel(options: { readonly pvh: boolean; readonly padding?: number }): Uint8Array {
  const note = new Uint8Array(20);
  const noteView = new DataView(note.buffer);
  noteView.setUint32(0, 4, true);
  noteView.setUint32(4, 4, true);
  noteView.setUint32(8, options.pvh ? 18 : 6, true);
  note.set(new TextEncoder().encode("Xen\0"), 12);
  noteView.setUint32(16, 0x1000000, true);
  const elf = new Uint8Array(64 + 56 + note.length + (options.padding ?? 4096));
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  const view = new DataView(elf.buffer);
  view.setUint16(16, 2, true);
  view.setUint16(18, 62, true);
  view.setBigUint64(32, 64n, true);
  view.setUint16(54, 56, true);
  view.setUint16(56, 1, true);
  view.setUint32(64, 4, true); // PT_NOTE
  view.setBigUint64(64 + 8, 120n, true);
  view.setBigUint64(64 + 32, BigInt(note.length), true);
  elf.set(note, 120);
  for (let i = 120 + note.length; i < elf.length; i++) elf[i] = i % 251;
  return elf;
}

async function compress(program: string, data: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(program, { args: ["-c"], stdin: "piped", stdout: "piped" }).spawn();
  const writer = child.stdin.getWriter();
  const [output] = await Promise.all([child.output(), writer.write(data).then(() => writer.close())]);
  assert.equal(output.code, 0);
  return output.stdout;
}

/** A bzImage as the boot protocol lays it out: setup sectors, "HdrS" 2.15, the payload with its size appended. */
function bzImage(payload: Uint8Array, recordedSize: number): Uint8Array {
  const setupSectors = 1;
  const payloadOffset = 16;
  const start = (setupSectors + 1) * 512;
  const image = new Uint8Array(start + payloadOffset + payload.length + 4 + 64);
  const view = new DataView(image.buffer);
  image[0x1f1] = setupSectors;
  view.setUint32(0x202, 0x53726448, true);
  view.setUint16(0x206, 0x20f, true);
  view.setUint32(0x248, payloadOffset, true);
  view.setUint32(0x24c, payload.length + 4, true);
  image.set(payload, start + payloadOffset);
  view.setUint32(start + payloadOffset + payload.length, recordedSize, true);
  return image;
}

async function keptBoot(dir: string, kernel: Uint8Array, initrd: Uint8Array): Promise<void> {
  await Deno.writeFile(join(dir, "vmlinuz"), kernel);
  await Deno.writeFile(join(dir, "initrd"), initrd);
  await Deno.writeTextFile(join(dir, "cmdline"), "root=/dev/vda2 rw quiet");
  await Deno.writeTextFile(join(dir, "id"), "kernel 6.1\n");
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const cpio = new TextEncoder().encode("070701" + "0".repeat(200) + "TRAILER!!!");

Deno.test("a bzImage's payload (gzip, zstd) is unpacked to its PVH vmlinux and a compressed cpio to plain; a direct boot takes them", async () => {
  for (const program of ["gzip", "zstd"]) {
    await withDir(async (dir) => {
      const elf = elfKernel({ pvh: true });
      await keptBoot(dir, bzImage(await compress(program, elf), elf.length), await compress(program, cpio));
      assert.deepEqual(await unpackBootFiles(dir), { kernel: true, initrd: true });
      assert.deepEqual(await Deno.readFile(join(dir, "vmlinux")), elf);
      assert.deepEqual(await Deno.readFile(join(dir, "initrd.cpio")), cpio);
      assert.equal((await Deno.stat(join(dir, "vmlinux"))).mode! & 0o777, 0o444);
      assert.equal(await isPvhKernel(join(dir, "vmlinux")), true);
      assert.equal(await isPvhKernel(join(dir, "vmlinuz")), false);
      const kept = await readKeptBoot({ boot: dir });
      assert.equal(kept?.kernel, join(dir, "vmlinux"));
      assert.equal(kept?.initrd, join(dir, "initrd.cpio"));
      assert.ok(kept?.kernel.endsWith("/vmlinux"), "QEMU starts it at its PVH entry");
    });
  }
});

Deno.test("what does not check out is not unpacked, and the packed files boot: no PVH note, a wrong size, a bomb, no cpio", async () => {
  await withDir(async (dir) => {
    // No PVH entry: QEMU could not start it in place.
    const plain = elfKernel({ pvh: false });
    await keptBoot(dir, bzImage(await compress("gzip", plain), plain.length), cpio);
    assert.deepEqual(await unpackBootFiles(dir), { kernel: false, initrd: false }, "an uncompressed cpio stays");
    assert.equal(await exists(join(dir, "vmlinux")), false, "nothing is left of a refused unpacking");
    const kept = await readKeptBoot({ boot: dir });
    assert.equal(kept?.kernel, join(dir, "vmlinuz"));
    assert.equal(kept?.initrd, join(dir, "initrd"));
    assert.ok(kept?.kernel.endsWith("/vmlinuz"), "packed: install and maintain say so");
  });
  await withDir(async (dir) => {
    // The size the kernel's build recorded is not what came out.
    const elf = elfKernel({ pvh: true });
    await keptBoot(dir, bzImage(await compress("zstd", elf), elf.length + 1), await compress("gzip", elf));
    assert.deepEqual(await unpackBootFiles(dir), { kernel: false, initrd: false }, "an initramfs that is no cpio");
    assert.equal(await exists(join(dir, "vmlinux")), false);
    assert.equal(await exists(join(dir, "initrd.cpio")), false);
  });
  await withDir(async (dir) => {
    // 64 MiB of zeros in a few KiB, against limits of 1 and 2 MiB: the decompressor is stopped, nothing is kept.
    // The initramfs's is a cpio that would pass; the kernel's recorded size is within its limit.
    const bomb = new Uint8Array(64 * 1024 * 1024);
    bomb.set(elfKernel({ pvh: true }));
    const cpioBomb = bomb.slice();
    cpioBomb.set(cpio);
    const packed = await compress("zstd", bomb);
    assert.ok(packed.length < 64 * 1024);
    await keptBoot(dir, bzImage(packed, 1024 * 1024), await compress("zstd", cpioBomb));
    const limits = { kernel: 2 * 1024 * 1024, initrd: 1024 * 1024 };
    assert.deepEqual(await unpackBootFiles(dir, { limits }), { kernel: false, initrd: false });
    assert.equal(await exists(join(dir, "vmlinux")), false);
    assert.equal(await exists(join(dir, "initrd.cpio")), false);
  });
  await withDir(async (dir) => {
    // Not a bzImage at all, and a header that points past the file's end.
    const broken = bzImage(new Uint8Array(100), 100);
    new DataView(broken.buffer).setUint32(0x24c, 1 << 30, true);
    await keptBoot(dir, broken, new Uint8Array(0));
    assert.deepEqual(await unpackBootFiles(dir), { kernel: false, initrd: false });
    await Deno.writeTextFile(join(dir, "vmlinuz"), "MZ not a kernel");
    assert.deepEqual(await unpackBootFiles(dir), { kernel: false, initrd: false });
  });
});
