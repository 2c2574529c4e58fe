/**
 * Per-project VM size (`set`), disk growth (`resize`) and whole-project
 * snapshots (`snapshot`) through the real CLI, qemu-img, qemu-io and QEMU
 * (firmware only), in a throw-away HOME; the guest's side is in the
 * end-to-end test.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { killVms, sealedSandbox, sh, virtdev } from "./_helpers.ts";

async function virtualSize(image: string): Promise<number> {
  return JSON.parse(await sh("qemu-img", ["info", "-U", "--output=json", image]))["virtual-size"];
}

/** Whether `image` holds byte `pattern` over its first MiB. */
async function holds(image: string, pattern: number): Promise<boolean> {
  const output = await new Deno.Command("qemu-io", {
    args: ["-r", "-U", "-c", `read -P ${pattern} 0 1M`, image],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.match(text, /read 1048576\/1048576 bytes|Pattern verification failed/, text);
  return !/Pattern verification failed/.test(text);
}

Deno.test("set: cpus and memory are kept in the project and reach QEMU at the next start; bad values exit 7", async () => {
  await using sandbox = await sealedSandbox("a", "b");
  const run = (...args: string[]) => virtdev(sandbox, args);
  assert.equal((await run("set", "a")).stdout, "cpus=1 (default) memory=256M (default)\n");
  const set = await run("set", "a", "cpus=2", "memory=1G");
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout, "cpus=2 memory=1G\n");
  for (const bad of ["cpus=0", "cpus=many", "memory=12", "memory=lots", "disk=5G", "cpus"]) {
    const refused = await run("set", "a", bad);
    assert.equal(refused.code, 7, `${bad}: ${refused.stderr}`);
  }
  assert.equal((await run("set", "a")).stdout, "cpus=2 memory=1G\n", "a refused value changes nothing");
  try {
    assert.equal((await run("start", "a")).code, 0);
    const record = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/runtime.json")));
    const args: string[] = record.qemu.args;
    assert.equal(args[args.indexOf("-smp") + 1], "2");
    assert.equal(args[args.indexOf("-m") + 1], "1024");
    const status = JSON.parse((await run("status", "--json", "a")).stdout);
    assert.deepEqual([status.cpus, status.memoryMiB], [2, 1024]);
    const list = JSON.parse((await run("list", "--json")).stdout) as {
      name: string;
      cpus: number;
      memoryMiB: number;
    }[];
    assert.deepEqual(list.map((p) => [p.name, p.cpus, p.memoryMiB]), [["a", 2, 1024], ["b", 1, 256]]);
    const stopped = await run("stop", "a");
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    await killVms(sandbox, ["a"]);
  }
  assert.equal((await run("set", "a", "cpus=")).stdout, "cpus=1 (default) memory=1G\n", "an empty value resets");
});

Deno.test("resize: grows a stopped project's disk, absolute or +SIZE; a shrink exits 6, a running VM 4, a bad size 7", async () => {
  await using sandbox = await sealedSandbox("a");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const home = join(sandbox.virtdevHome, "projects/a/home.qcow2");
  const system = join(sandbox.virtdevHome, "projects/a/system.qcow2");
  assert.equal(await virtualSize(home), 64 << 20);
  const grown = await run("resize", "a", "home", "+1G");
  assert.equal(grown.code, 0, grown.stderr);
  assert.equal(await virtualSize(home), (64 << 20) + (1 << 30));
  assert.equal((await run("resize", "a", "system", "128M")).code, 0);
  assert.equal(await virtualSize(system), 128 << 20);
  assert.ok(await holds(home, 7), "the data over the base is still there");
  const shrink = await run("resize", "a", "home", "100M");
  assert.equal(shrink.code, 6, shrink.stderr);
  assert.match(shrink.stderr, /grows disks only/);
  assert.equal(await virtualSize(home), (64 << 20) + (1 << 30), "a refused shrink changes nothing");
  assert.equal((await run("resize", "a", "home", "+lots")).code, 7);
  assert.equal((await run("resize", "a", "swap", "1G")).code, 64);
  try {
    assert.equal((await run("start", "a")).code, 0);
    assert.equal((await run("resize", "a", "home", "+1G")).code, 4);
  } finally {
    await killVms(sandbox, ["a"]);
  }
});

Deno.test("snapshot: take, list, revert (disks and nvram), delete; refused while running (4); names checked", async () => {
  await using sandbox = await sealedSandbox("a");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const dir = join(sandbox.virtdevHome, "projects/a");
  const nvram = join(dir, "nvram");
  const before = await Deno.readFile(nvram);
  // One the user made by hand: virtdev neither lists it nor touches it.
  await sh("qemu-img", ["snapshot", "-c", "by-hand", join(dir, "system.qcow2")]);
  const taken = await run("snapshot", "a", "clean");
  assert.equal(taken.code, 0, taken.stderr);
  assert.equal(taken.stdout, "clean\n");
  // The guest writes: other bytes on both disks and in its firmware variables.
  for (const disk of ["system.qcow2", "home.qcow2"]) await sh("qemu-io", ["-c", "write -P 9 0 1M", join(dir, disk)]);
  await Deno.writeFile(nvram, new Uint8Array(before.length).fill(1));
  assert.ok(!await holds(join(dir, "home.qcow2"), 7));
  const listed = JSON.parse((await run("snapshot", "--list", "--json", "a")).stdout) as { name: string }[];
  assert.deepEqual(listed.map((s) => s.name), ["clean"]);
  assert.equal((await run("snapshot", "a", "clean")).code, 6, "a name is taken once");
  assert.equal((await run("snapshot", "a", "by-hand")).code, 6, "nor one that is there by hand");
  assert.equal((await run("snapshot", "a", "../x")).code, 7);
  assert.equal((await run("snapshot", "--revert", "a", "nope")).code, 5);

  const reverted = await run("snapshot", "--revert", "a", "clean");
  assert.equal(reverted.code, 0, reverted.stderr);
  for (const disk of ["system.qcow2", "home.qcow2"]) assert.ok(await holds(join(dir, disk), 7), disk);
  assert.deepEqual(await Deno.readFile(nvram), before, "the firmware variables are back");

  try {
    assert.equal((await run("start", "a")).code, 0);
    const refused = await run("snapshot", "--revert", "a", "clean");
    assert.equal(refused.code, 4, refused.stderr);
    assert.equal((await run("snapshot", "a", "live")).code, 4);
    assert.equal((await run("stop", "a")).code, 0);
  } finally {
    await killVms(sandbox, ["a"]);
  }
  assert.equal((await run("snapshot", "--delete", "a", "clean")).code, 0);
  assert.equal((await run("snapshot", "--list", "--json", "a")).stdout, "[]\n");
  assert.equal(await sh("qemu-img", ["snapshot", "-l", join(dir, "home.qcow2")]), "", "no internal snapshot is left");
  const system = await sh("qemu-img", ["snapshot", "-l", join(dir, "system.qcow2")]);
  assert.match(system, /\bby-hand\b/, "the snapshot made by hand is still there");
  assert.doesNotMatch(system, /\bclean\b/);
});

for (const point of ["snapshot.system-taken", "snapshot.revert-system", "snapshot.delete-marked"]) {
  Deno.test(`a snapshot command killed at ${point} is finished or cleared by the next one`, async () => {
    await using sandbox = await sealedSandbox("a");
    const run = (args: string[], env?: Record<string, string>) => virtdev(sandbox, args, { env });
    const dir = join(sandbox.virtdevHome, "projects/a");
    await sh("qemu-img", ["snapshot", "-c", "by-hand", join(dir, "home.qcow2")]);
    if (point !== "snapshot.system-taken") assert.equal((await run(["snapshot", "a", "s1"])).code, 0);
    await sh("qemu-io", ["-c", "write -P 9 0 1M", join(dir, "system.qcow2")]);
    await sh("qemu-io", ["-c", "write -P 9 0 1M", join(dir, "home.qcow2")]);
    const args = point === "snapshot.system-taken"
      ? ["snapshot", "a", "s1"]
      : point === "snapshot.revert-system"
      ? ["snapshot", "--revert", "a", "s1"]
      : ["snapshot", "--delete", "a", "s1"];
    assert.equal((await run(args, { VIRTDEV_TEST_CRASH_AT: point })).code, 137);
    // The next snapshot command recovers first.
    const list = await run(["snapshot", "--list", "--json", "a"]);
    assert.equal(list.code, 0, list.stderr);
    await run(["snapshot", "a", "probe"]);
    const names = (JSON.parse((await run(["snapshot", "--list", "--json", "a"])).stdout) as { name: string }[])
      .map((s) => s.name);
    if (point === "snapshot.revert-system") {
      // The revert was finished: both disks are back, not only the system disk.
      assert.deepEqual(names, ["s1", "probe"]);
      for (const disk of ["system.qcow2", "home.qcow2"]) assert.ok(await holds(join(dir, disk), 7), disk);
    } else {
      // Half a snapshot (or half a delete) leaves nothing behind.
      assert.deepEqual(names, ["probe"]);
      for (const disk of ["system.qcow2", "home.qcow2"]) {
        const internal = await sh("qemu-img", ["snapshot", "-l", join(dir, disk)]);
        assert.doesNotMatch(internal, /\bs1\b/, disk);
      }
    }
    assert.match(await sh("qemu-img", ["snapshot", "-l", join(dir, "home.qcow2")]), /\bby-hand\b/, "made by hand");
  });
}
