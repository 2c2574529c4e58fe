import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createBootExportDisk,
  directKernelAppend,
  importBootExport,
  readKeptBoot,
} from "../src/core/vm/direct_boot.ts";
import { bootExportSerial, qemuArguments, type VmSpec } from "../src/core/vm/qemu_args.ts";
import { withDir } from "./_helpers.ts";

/** What the guest's `boot-files export` writes: GNU tar of the four files onto the export disk. */
async function exportDisk(dir: string, files: Record<string, string | Uint8Array>, order?: string[]): Promise<string> {
  const from = join(dir, "from");
  await Deno.mkdir(from, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === "string") await Deno.writeTextFile(join(from, name), content);
    else await Deno.writeFile(join(from, name), content);
  }
  const disk = join(dir, "export.raw");
  await createBootExportDisk(disk);
  const tar = await new Deno.Command("tar", {
    args: ["-cf", "-", "-C", from, ...(order ?? Object.keys(files))],
    stdout: "piped",
  }).output();
  assert.equal(tar.code, 0);
  using file = await Deno.open(disk, { write: true });
  await file.write(tar.stdout);
  return disk;
}

const good = {
  id: "/boot/vmlinuz-6.1.0-28-cloud-amd64 123 1700000000\n/boot/initrd.img-6.1.0-28-cloud-amd64 456 1700000001\n",
  cmdline: "root=UUID=0c5d ro console=tty0 console=ttyS0,115200 no_timer_check\n",
  vmlinuz: new Uint8Array(3000).fill(7),
  initrd: new Uint8Array(5000).fill(9),
};

Deno.test("a boot export is taken into boot/ (0444), and read back for a direct boot with the identity's hash", async () => {
  await withDir(async (dir) => {
    const disk = await exportDisk(dir, good, ["id", "cmdline", "vmlinuz", "initrd"]);
    const boot = join(dir, "base", "boot");
    await Deno.mkdir(join(dir, "base"));
    // Test files, not a real kernel and initramfs: taken, and kept packed.
    assert.deepEqual(await importBootExport(disk, boot), { kernel: false, initrd: false });
    assert.deepEqual(await Deno.readFile(join(boot, "vmlinuz")), good.vmlinuz);
    assert.deepEqual(await Deno.readFile(join(boot, "initrd")), good.initrd);
    assert.equal((await Deno.stat(join(boot, "initrd"))).mode! & 0o777, 0o444);
    const kept = await readKeptBoot({ boot });
    assert.ok(kept);
    // The guest's own sum: `identity | sha256sum | cut -c1-16`.
    const sum = new TextDecoder().decode(
      (await new Deno.Command("sh", { args: ["-c", `printf '%s' "$0" | sha256sum | cut -c1-16`, good.id] }).output())
        .stdout,
    ).trim();
    assert.equal(kept.idHash, sum);
    assert.equal(
      directKernelAppend(kept),
      `root=UUID=0c5d ro console=tty0 console=ttyS0,115200 no_timer_check virtdev.boot=${sum}`,
    );
    assert.match(
      directKernelAppend({ ...kept, cmdline: "root=/dev/vda1 virtdev.boot=0000" }),
      /^root=\/dev\/vda1 no_timer_check virtdev\.boot=[0-9a-f]{16}$/,
    );
    // A second export replaces the first whole.
    const again = await exportDisk(join(dir, "2"), { ...good, initrd: new Uint8Array(10).fill(1) });
    assert.deepEqual(await importBootExport(again, boot), { kernel: false, initrd: false });
    assert.equal((await Deno.stat(join(boot, "initrd"))).size, 10);
  });
});

Deno.test("a boot export that is empty, incomplete, oversized, misnamed or not files is never taken, and boot/ stays", async () => {
  await withDir(async (dir) => {
    const boot = join(dir, "boot");
    const empty = join(dir, "empty.raw");
    await createBootExportDisk(empty);
    assert.equal(await importBootExport(empty, boot), undefined);
    assert.equal(await readKeptBoot({ boot }), undefined);

    const cases: Record<string, Record<string, string | Uint8Array>> = {
      incomplete: { id: good.id, cmdline: good.cmdline, vmlinuz: good.vmlinuz },
      "a name of its own": { passwd: "x", ...good },
      "a cmdline without root": { ...good, cmdline: "quiet\n" },
      "a cmdline with control bytes": { ...good, cmdline: "root=/dev/vda1 \x1b[2J\n" },
      "an id over its limit": { ...good, id: "x".repeat(2000) },
    };
    for (const [what, files] of Object.entries(cases)) {
      const sub = join(dir, what.replaceAll(" ", "-"));
      const disk = await exportDisk(sub, files);
      assert.equal(await importBootExport(disk, boot), undefined, what);
      assert.equal(await readKeptBoot({ boot }), undefined, what);
    }
    // A link where a file should be.
    const linked = join(dir, "linked");
    await Deno.mkdir(join(linked, "from"), { recursive: true });
    for (const [name, content] of Object.entries(good)) {
      if (name !== "vmlinuz") {
        if (typeof content === "string") await Deno.writeTextFile(join(linked, "from", name), content);
        else await Deno.writeFile(join(linked, "from", name), content);
      }
    }
    await Deno.symlink("/etc/shadow", join(linked, "from", "vmlinuz"));
    const disk = join(linked, "export.raw");
    await createBootExportDisk(disk);
    const tar = await new Deno.Command("tar", {
      args: ["-cf", "-", "-C", join(linked, "from"), "id", "cmdline", "vmlinuz", "initrd"],
      stdout: "piped",
    }).output();
    using file = await Deno.open(disk, { write: true });
    await file.write(tar.stdout);
    assert.equal(await importBootExport(disk, boot), undefined, "a symlink entry");
    // A header whose checksum does not add up.
    const forged = await exportDisk(join(dir, "forged"), good);
    using forgedFile = await Deno.open(forged, { read: true, write: true });
    await forgedFile.seek(124, Deno.SeekMode.Start);
    await forgedFile.write(new TextEncoder().encode("77777777777\0"));
    assert.equal(await importBootExport(forged, boot), undefined, "a forged size");
  });
});

Deno.test("a direct boot's argv: -kernel, -initrd, -append, and no UEFI pflash; the export disk has its serial", () => {
  const spec: VmSpec = {
    name: "web",
    accel: "tcg",
    memoryMiB: 1024,
    cpus: 1,
    firmware: { code: "/fw/CODE.fd", nvram: "/p/web/nvram" },
    disks: { system: "/p/web/system.qcow2", home: "/p/web/home.qcow2" },
  };
  const direct = qemuArguments({
    ...spec,
    directKernel: { kernel: "/s/boot/vmlinuz", initrd: "/s/boot/initrd", append: "root=UUID=x ro, quiet" },
  });
  const value = (flag: string) => direct[direct.indexOf(flag) + 1];
  assert.equal(value("-kernel"), "/s/boot/vmlinuz");
  assert.equal(value("-initrd"), "/s/boot/initrd");
  assert.equal(value("-append"), "root=UUID=x ro, quiet");
  assert.ok(!direct.some((arg) => arg.includes("pflash")));
  assert.ok(qemuArguments(spec).some((arg) => arg.includes("pflash")));
  const exported = qemuArguments({ ...spec, exportDisk: "/m/boot-export.raw" });
  assert.ok(exported.includes("file=/m/boot-export.raw,if=none,id=bootexport,format=raw"));
  assert.ok(exported.includes(`virtio-blk-pci,drive=bootexport,serial=${bootExportSerial},addr=0x1e`));
});
