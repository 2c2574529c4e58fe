import assert from "node:assert/strict";
import { join } from "node:path";
import { qcow2VirtualSize, writeQcow2Overlay } from "../src/core/vm/qcow2_overlay.ts";
import { VirtdevError } from "../src/core/store/errors.ts";
import { sh } from "./_helpers.ts";

async function tool(program: string, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  const output = await new Deno.Command(program, { args: [...args], stdout: "piped", stderr: "piped" }).output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

/** What qemu-img reports of an image that a guest or a tool would act on. */
async function describe(path: string): Promise<Record<string, unknown>> {
  const info = JSON.parse(await sh("qemu-img", ["info", "--output=json", path]));
  const specific = info["format-specific"].data;
  return {
    format: info.format,
    virtualSize: info["virtual-size"],
    clusterSize: info["cluster-size"],
    backing: info["backing-filename"],
    backingFormat: info["backing-filename-format"],
    compat: specific.compat,
    refcountBits: specific["refcount-bits"],
    lazyRefcounts: specific["lazy-refcounts"],
    corrupt: specific.corrupt,
    extendedL2: specific["extended-l2"],
    compression: specific["compression-type"],
    dirty: info["dirty-flag"],
  };
}

for (const size of ["4G", "1537M", "10T"]) {
  Deno.test(`an overlay written in-process reads as qemu-img's own over a ${size} base, and takes writes`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const base = join(dir, "base, with a comma.qcow2");
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", base, size]);
      // Data in the base, at the start and past the first L2 table's reach (512 MiB).
      await sh("qemu-io", ["-c", "write -P 0x5a 0 64k", "-c", "write -P 0xa5 1g 64k", base]);
      const ours = join(dir, "ours.qcow2");
      const theirs = join(dir, "theirs.qcow2");
      await writeQcow2Overlay(ours, base);
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", theirs]);

      assert.deepEqual(await describe(ours), await describe(theirs));
      assert.equal((await Deno.stat(ours)).mode! & 0o777, 0o600);
      assert.equal((await tool("qemu-img", ["check", ours])).code, 0);
      // Every byte the guest would read comes from the base.
      assert.equal((await tool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", ours, base])).code, 0);
      assert.equal((await tool("qemu-io", ["-c", "read -P 0xa5 1g 64k", ours])).code, 0);

      // A write lands in the overlay, not in the base, and leaves a consistent image.
      const baseBefore = await Deno.readFile(base);
      assert.equal((await tool("qemu-io", ["-c", "write -P 0x33 1g 4k", ours])).code, 0);
      assert.equal((await tool("qemu-img", ["check", ours])).code, 0);
      const read = await tool("qemu-io", ["-c", "read -P 0x33 1g 4k", "-c", "read -P 0xa5 1073745920 60k", ours]);
      assert.equal(read.code, 0);
      assert.doesNotMatch(read.stdout, /Pattern verification failed/);
      assert.deepEqual(await Deno.readFile(base), baseBefore);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("an overlay is refused over a file that is not qcow2, a relative path, or on top of an existing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const raw = join(dir, "raw.img");
    await sh("qemu-img", ["create", "-q", "-f", "raw", raw, "1G"]);
    await assert.rejects(() => writeQcow2Overlay(join(dir, "a.qcow2"), raw), VirtdevError);
    await assert.rejects(() => qcow2VirtualSize(join(dir, "missing.qcow2")), Deno.errors.NotFound);

    const base = join(dir, "base.qcow2");
    await sh("qemu-img", ["create", "-q", "-f", "qcow2", base, "1G"]);
    await assert.rejects(() => writeQcow2Overlay(join(dir, "b.qcow2"), "base.qcow2"), VirtdevError);

    // Never over an existing file: what was there stays.
    const kept = join(dir, "kept.qcow2");
    await Deno.writeTextFile(kept, "precious");
    await assert.rejects(() => writeQcow2Overlay(kept, base), Deno.errors.AlreadyExists);
    assert.equal(await Deno.readTextFile(kept), "precious");
    for (const name of ["a.qcow2", "b.qcow2"]) {
      await assert.rejects(() => Deno.stat(join(dir, name)), Deno.errors.NotFound);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
