import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic } from "../src/core/store/atomic_write.ts";

Deno.test("writeFileAtomic replaces content, sets the mode and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "generation");
    await writeFileAtomic(path, "1\n");
    await writeFileAtomic(path, "2\n", { mode: 0o444 });
    assert.equal(await Deno.readTextFile(path), "2\n");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o444);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["generation"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed writeFileAtomic keeps the old target and cleans up", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A directory cannot be replaced by a file: the rename fails.
    const path = join(dir, "target");
    await Deno.mkdir(path);
    await Deno.writeTextFile(join(path, "inside"), "kept");
    await assert.rejects(() => writeFileAtomic(path, "new"));
    assert.equal(await Deno.readTextFile(join(path, "inside")), "kept");
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["target"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
