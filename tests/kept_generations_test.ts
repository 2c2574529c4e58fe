/**
 * Kept base generations, with real qcow2 images: a reseal keeps the old
 * base for the projects written over it (also when killed inside the
 * keeping and run again), `start` names the ways out, `start --stale`
 * boots on the kept base, `detach` merges onto the project's own base and
 * refuses any other, and the last user's leaving removes the generation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, killVms, runResealSwap, type Sandbox, sealedSandbox, sh, virtdev } from "./_helpers.ts";

/** A maintenance copy at generation 1 whose disks hold pattern 2 (the sealed base holds 7). */
async function makeMaintenance(sandbox: Sandbox): Promise<void> {
  const dir = join(sandbox.virtdevHome, "maintenance");
  await Deno.mkdir(dir, { recursive: true });
  for (const disk of ["system.qcow2", "home.qcow2"]) {
    await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, disk), "64M"]);
    await sh("qemu-io", ["-c", "write -P 2 0 1M", join(dir, disk)]);
  }
  await Deno.copyFile(join(sandbox.virtdevHome, "system/nvram"), join(dir, "nvram"));
  await Deno.writeTextFile(join(dir, "generation"), "1\n");
}

/** Whether the image (through its backing chain) reads `pattern` over `length` bytes at `offset`. */
async function reads(path: string, pattern: number, offset: string, length: string): Promise<boolean> {
  const output = await new Deno.Command("qemu-io", {
    args: ["-r", "-U", "-c", `read -P ${pattern} ${offset} ${length}`, path],
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  return output.code === 0 && !/failed/i.test(text) && /read \d+\/\d+ bytes/.test(text);
}

async function backing(path: string): Promise<string | undefined> {
  const info = JSON.parse(await sh("qemu-img", ["info", "-U", "--output=json", path]));
  return info["full-backing-filename"] ?? info["backing-filename"];
}

for (const crashAt of [undefined, "keep.linked", "keep.repointed-one"]) {
  Deno.test(
    `a reseal keeps the old base for the projects on it${crashAt ? ` (killed at ${crashAt}, then run again)` : ""}`,
    async () => {
      await using sandbox = await sealedSandbox("p", "q");
      const home = sandbox.virtdevHome;
      const kept = join(home, "generations/1");
      // p's own data, in its delta: what a wrong base would lose.
      await sh("qemu-io", ["-c", "write -P 9 2M 1M", join(home, "projects/p/system.qcow2")]);
      await makeMaintenance(sandbox);
      if (crashAt) {
        assert.equal(await runResealSwap(sandbox, crashAt), 137, "killed");
        // Until the swap, both names hold the same base: p still starts on the current generation.
        assert.equal((await sh("cat", [join(home, "system/generation")])).trim(), "1");
        assert.ok(await reads(join(home, "projects/p/system.qcow2"), 9, "2M", "1M"));
        assert.ok(await reads(join(home, "projects/p/system.qcow2"), 7, "0", "1M"));
      }
      assert.equal(await runResealSwap(sandbox), 0, "the reseal runs (again)");
      assert.equal((await sh("cat", [join(home, "system/generation")])).trim(), "2");
      assert.equal((await sh("cat", [join(kept, "generation")])).trim(), "1");
      for (const project of ["p", "q"]) {
        for (const disk of ["system.qcow2", "home.qcow2"]) {
          assert.equal(await backing(join(home, "projects", project, disk)), join(kept, disk), `${project} ${disk}`);
        }
      }
      // p reads its own base and its own data, not the new base.
      assert.ok(await reads(join(home, "projects/p/system.qcow2"), 7, "0", "1M"), "p reads generation 1's bytes");
      assert.ok(await reads(join(home, "projects/p/system.qcow2"), 9, "2M", "1M"), "p keeps its data");
      assert.equal(await exists(join(home, "generations/.keeping-1")), false);
      await sh("qemu-img", ["check", "-q", join(home, "projects/p/system.qcow2")]);
    },
  );
}

Deno.test("stale projects on a kept base: start's hint, start --stale, list/disk/gc, detach onto its own base, removal with the last user", async () => {
  await using sandbox = await sealedSandbox("p", "q");
  const home = sandbox.virtdevHome;
  const kept = join(home, "generations/1");
  try {
    await sh("qemu-io", ["-c", "write -P 9 2M 1M", join(home, "projects/p/system.qcow2")]);
    await makeMaintenance(sandbox);
    assert.equal(await runResealSwap(sandbox), 0);

    const start = await virtdev(sandbox, ["start", "p"]);
    assert.equal(start.code, 11, start.stderr);
    assert.match(start.stderr, /Its own base is kept/);
    assert.match(start.stderr, /virtdev start --stale p/);
    assert.doesNotMatch(start.stderr, /may corrupt/);

    const list = JSON.parse((await virtdev(sandbox, ["list", "--json"])).stdout);
    const p = list.find((row: { name: string }) => row.name === "p");
    assert.equal(p.stale, true);
    assert.equal(p.keptBase.generation, "1");
    assert.ok(p.keptBase.bytes > 0, "the kept base's size is shown");
    const disk = JSON.parse((await virtdev(sandbox, ["disk", "--json", "p"])).stdout);
    assert.deepEqual(disk.keptBase.projects, ["p", "q"]);

    // The firmware boots on the kept base (there is no OS on these disks).
    const stale = await virtdev(sandbox, ["start", "--stale", "p"]);
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stderr, /kept base generation/);
    assert.equal((await virtdev(sandbox, ["stop", "p"])).code, 0);

    // A project that claims generation 1 but is written over the new base: no merge onto it.
    assert.equal((await virtdev(sandbox, ["create", "r"])).code, 0);
    await Deno.writeTextFile(join(home, "projects/r/generation"), "1\n");
    const foreign = await virtdev(sandbox, ["detach", "-y", "r"]);
    assert.equal(foreign.code, 13, foreign.stderr);
    assert.match(foreign.stderr, /not its own base/);
    assert.equal(await backing(join(home, "projects/r/system.qcow2")), join(home, "system/system.qcow2"), "unchanged");
    const r = await virtdev(sandbox, ["start", "--stale", "r"]);
    assert.equal(r.code, 11, r.stderr);
    assert.doesNotMatch(r.stderr, /Its own base is kept/);

    // gc keeps what p and q use; detach merges p onto generation 1's bytes.
    const gc = await virtdev(sandbox, ["gc", "--json"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(JSON.parse(gc.stdout).removed, []);
    const detach = await virtdev(sandbox, ["detach", "-y", "p"]);
    assert.equal(detach.code, 0, detach.stderr);
    assert.equal(await backing(join(home, "projects/p/system.qcow2")), undefined);
    assert.ok(await reads(join(home, "projects/p/system.qcow2"), 7, "0", "1M"), "generation 1's bytes merged in");
    assert.ok(await reads(join(home, "projects/p/system.qcow2"), 9, "2M", "1M"), "p's data kept");
    assert.equal(await exists(kept), true, "q still uses generation 1");

    // q, the last user, leaves: the generation goes with it.
    assert.equal((await virtdev(sandbox, ["destroy", "-y", "q"])).code, 0);
    assert.equal(await exists(kept), false, "removed with its last user");
    const after = await virtdev(sandbox, ["gc"]);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.stdout, "");
  } finally {
    await killVms(sandbox, ["p", "r"]);
  }
});
