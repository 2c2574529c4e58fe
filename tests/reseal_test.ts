/**
 * The reseal swap under SIGKILL at each of its steps, with real qcow2
 * images: the next `start` or `maintain` finishes or rolls back the swap,
 * the base always passes `qemu-img check`, and its generation always
 * describes the disks beside it (pattern 1 = generation 1, 2 = 2).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, makeSandbox, runResealSwap, type Sandbox, sh, virtdev } from "./_helpers.ts";
import { emptyProof, judgeShutdown, withEvent } from "../src/core/vm/shutdown_proof.ts";

async function makeBase(dir: string, pattern: number, generation: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const disk of ["system.qcow2", "home.qcow2"]) {
    await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, disk), "16M"]);
    await sh("qemu-io", ["-c", `write -P ${pattern} 0 1M`, join(dir, disk)]);
  }
  await Deno.writeFile(join(dir, "nvram"), new Uint8Array(4096).fill(pattern));
  await Deno.writeTextFile(join(dir, "generation"), `${generation}\n`);
}

async function patternOf(path: string): Promise<number | undefined> {
  for (const pattern of [1, 2]) {
    // This qemu-io exits 1 on a mismatch (older ones exit 0 and only say so).
    const output = await new Deno.Command("qemu-io", { args: ["-r", "-c", `read -P ${pattern} 0 1M`, path] }).output();
    const text = new TextDecoder().decode(output.stdout);
    if (output.code === 0 && !/failed/i.test(text) && /read 1048576\/1048576/.test(text)) return pattern;
  }
  return undefined;
}

/** The base is whole, checks clean, and its generation names its disks' content. */
async function assertConsistentBase(sandbox: Sandbox): Promise<number> {
  const base = join(sandbox.virtdevHome, "system");
  const generation = Number((await Deno.readTextFile(join(base, "generation"))).trim());
  for (const disk of ["system.qcow2", "home.qcow2"]) {
    const check = await new Deno.Command("qemu-img", { args: ["check", "-q", join(base, disk)] }).output();
    assert.equal(check.code, 0, `${disk} passes qemu-img check`);
    assert.equal(await patternOf(join(base, disk)), generation, `${disk} holds generation ${generation}'s data`);
  }
  assert.equal((await Deno.readFile(join(base, "nvram")))[0], generation, "nvram belongs to the generation");
  assert.equal(await exists(join(sandbox.virtdevHome, "system.old")), false, "no old base left");
  assert.equal(await exists(join(sandbox.virtdevHome, "reseal.journal")), false, "no journal left");
  return generation;
}

const points: readonly { point: string; expect: number }[] = [
  { point: "reseal.prepared", expect: 1 },
  { point: "reseal.journal-written", expect: 2 },
  { point: "reseal.old-moved", expect: 2 },
  { point: "reseal.new-moved", expect: 2 },
  { point: "reseal.committed", expect: 2 },
];

for (const [index, { point, expect }] of points.entries()) {
  // Half the cases recover through start, half through maintain.
  const via = index % 2 === 0 ? "start" : "maintain";
  Deno.test(`a reseal killed at ${point} is recovered by the next ${via}: generation ${expect}, disks to match`, async () => {
    await using sandbox = await makeSandbox();
    await makeBase(join(sandbox.virtdevHome, "system"), 1, "1");
    await makeBase(join(sandbox.virtdevHome, "maintenance"), 2, "1");
    assert.equal(await runResealSwap(sandbox, point), 137, "the swap was killed");
    const next = via === "start"
      ? await virtdev(sandbox, ["start", "nosuch"])
      : await virtdev(sandbox, ["maintain", "-y"]);
    // start: no such project (3); maintain: no SSH key yet (77). Both after recovery.
    assert.equal(next.code, via === "start" ? 3 : 77, next.stderr);
    if (expect === 2 && point !== "reseal.committed") assert.match(next.stderr, /interrupted reseal and finished it/);
    assert.equal(await assertConsistentBase(sandbox), expect);
    if (via === "maintain") {
      assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), expect === 1, "leftover copy");
    }
  });
}

Deno.test("a reseal whose new base is incomplete is rolled back: the old base returns whole", async () => {
  await using sandbox = await makeSandbox();
  await makeBase(join(sandbox.virtdevHome, "system"), 1, "1");
  await makeBase(join(sandbox.virtdevHome, "maintenance"), 2, "1");
  assert.equal(await runResealSwap(sandbox, "reseal.old-moved"), 137);
  await Deno.remove(join(sandbox.virtdevHome, "maintenance/home.qcow2"));
  const next = await virtdev(sandbox, ["start", "nosuch"]);
  assert.equal(next.code, 3, next.stderr);
  assert.match(next.stderr, /old base is back in place/);
  assert.equal(await assertConsistentBase(sandbox), 1);
});

Deno.test("a damaged reseal journal: start, create and maintain exit 74 naming it and the way back; nothing moves", async () => {
  await using sandbox = await makeSandbox();
  await makeBase(join(sandbox.virtdevHome, "system"), 1, "1");
  await makeBase(join(sandbox.virtdevHome, "maintenance"), 2, "1");
  assert.equal(await runResealSwap(sandbox, "reseal.old-moved"), 137);
  const journal = join(sandbox.virtdevHome, "reseal.journal");
  assert.ok(await exists(journal), "the swap left its journal");
  await Deno.writeTextFile(journal, '{"from": "1", "to"');
  for (const args of [["start", "nosuch"], ["create", "newone"], ["maintain", "-y"]]) {
    const result = await virtdev(sandbox, args);
    assert.equal(result.code, 74, `${args[0]}: ${result.stderr}`);
    assert.ok(result.stderr.includes(journal), result.stderr);
    assert.match(result.stderr, /hint: .*remove the journal/);
    assert.match(result.stderr, /hint: .*mv .*system\.old .*system/);
  }
  assert.ok(await exists(join(sandbox.virtdevHome, "maintenance/system.qcow2")), "the new base was left alone");
  assert.ok(await exists(join(sandbox.virtdevHome, "system.old/system.qcow2")), "the old base was left alone");
  // Done as the hint says, the next command goes on.
  await Deno.rename(join(sandbox.virtdevHome, "system.old"), join(sandbox.virtdevHome, "system"));
  await Deno.remove(journal);
  assert.equal((await virtdev(sandbox, ["start", "nosuch"])).code, 3);
  assert.equal(await assertConsistentBase(sandbox), 1);
});

Deno.test("a reseal that is not interrupted leaves generation 2 and nothing else", async () => {
  await using sandbox = await makeSandbox();
  await makeBase(join(sandbox.virtdevHome, "system"), 1, "1");
  await makeBase(join(sandbox.virtdevHome, "maintenance"), 2, "1");
  assert.equal(await runResealSwap(sandbox), 0);
  assert.equal(await assertConsistentBase(sandbox), 2);
  assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), false);
  const mode = (await Deno.stat(join(sandbox.virtdevHome, "system/system.qcow2"))).mode! & 0o777;
  assert.equal(mode, 0o444, "the new base is read-only");
});

Deno.test("maintain refuses a base generation it cannot count up (28) and a corrupt one (15)", async () => {
  for (const [generation, code] of [["9007199254740991", 28], ["x1", 15]] as const) {
    await using sandbox = await makeSandbox();
    await makeBase(join(sandbox.virtdevHome, "system"), 1, generation);
    assert.equal((await virtdev(sandbox, ["key"])).code, 0);
    const result = await virtdev(sandbox, ["maintain", "-y"]);
    assert.equal(result.code, code, result.stderr);
    assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), false);
  }
});

Deno.test("shutdown proof: only a guest power-off with QEMU exiting 0 counts", () => {
  const token = "t";
  const guestOff = { event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" } };
  const clean = { ...withEvent(emptyProof(token), guestOff), qemuExit: 0 };
  assert.deepEqual(judgeShutdown(clean, token), { clean: true });
  // virtdev stop: the host's power button, then the guest's ACPI shutdown.
  const aborted = { ...withEvent(withEvent(emptyProof(token), { event: "POWERDOWN" }), guestOff), qemuExit: 0 };
  assert.equal(judgeShutdown(aborted, token).clean, false);
  assert.equal((judgeShutdown(aborted, token) as { why: string }).why, "aborted");
  const panicked = {
    ...withEvent(emptyProof(token), { event: "GUEST_PANICKED", data: { action: "pause" } }),
    qemuExit: 0,
  };
  assert.equal((judgeShutdown(panicked, token) as { why: string }).why, "panicked");
  const killed = { ...emptyProof(token), qemuExit: 137 };
  assert.equal((judgeShutdown(killed, token) as { why: string }).why, "killed");
  // A host-side quit (SIGTERM through QMP) is SHUTDOWN with guest false.
  const hostQuit = {
    ...withEvent(emptyProof(token), { event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-quit" } }),
    qemuExit: 0,
  };
  assert.equal(judgeShutdown(hostQuit, token).clean, false);
  assert.equal(judgeShutdown(clean, "another boot").clean, false, "a proof from another boot");
  assert.equal(judgeShutdown(undefined, token).clean, false);
});
