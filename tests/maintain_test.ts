/**
 * maintain and upgrade without a guest: the real CLI, qemu-img and QEMU
 * (booting firmware with no operating system) in a throw-away HOME. The
 * audit and plan of upgrade, maintain's refusals, and a session that fails
 * after its copy was booted, which must leave the base byte-identical.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { exists, killVms, makeInstallation, makeSandbox, type Sandbox, sh, smallVmEnv, virtdev } from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });

async function sealed(env: Record<string, string> = {}): Promise<Sandbox> {
  const sandbox = await makeSandbox({ ...smallVmEnv, ...env });
  await makeInstallation(sandbox, { firmwareVars: firmware.vars, pattern: 7 });
  assert.equal((await virtdev(sandbox, ["seal"])).code, 0);
  return sandbox;
}

async function checksums(sandbox: Sandbox): Promise<string> {
  const base = join(sandbox.virtdevHome, "system");
  return await sh("sha256sum", ["system.qcow2", "home.qcow2", "nvram", "generation"].map((f) => join(base, f)));
}

Deno.test("upgrade audits before anything runs: 3, 4, 5, 10, 11, 7, and 8 at the prompt", async () => {
  await using empty = await makeSandbox();
  assert.equal((await virtdev(empty, ["upgrade", "-y"])).code, 3, "no base");

  await using sandbox = await sealed();
  const run = (args: string[], stdin?: string) => virtdev(sandbox, args, { stdin });
  assert.equal((await run(["upgrade", "-y"])).code, 10, "no projects");
  for (const name of ["a", "b", "c"]) assert.equal((await run(["create", name])).code, 0);
  assert.equal((await run(["upgrade", "--only", "a", "--except", "b"])).code, 4);
  const missing = await run(["upgrade", "--only", "a,nosuch"]);
  assert.equal(missing.code, 5, missing.stderr);
  assert.match(missing.stderr, /No such project: nosuch\./);
  assert.equal((await run(["upgrade", "--only", "a,-x"])).code, 2, "names are checked");

  // a has a manifest, b none, c is detached.
  await Deno.writeTextFile(join(sandbox.virtdevHome, "projects/a/manifest"), "work/\n");
  assert.equal((await run(["detach", "-y", "c"])).code, 0);
  const plan = await run(["upgrade"], "no\n");
  assert.equal(plan.code, 8, plan.stderr);
  assert.match(plan.stderr, /warning: b has no usable backup manifest/);
  assert.match(plan.stderr, /Projects to upgrade: 1\n {2}a\n/);
  assert.match(plan.stderr, /b {29} \(no usable backup manifest\)/);
  assert.match(plan.stderr, /c {29} \(detached\)/);
  assert.match(plan.stderr, /Type 'upgrade' to confirm/);
  assert.equal(await exists(join(sandbox.virtdevHome, "backups/a")), false, "nothing ran");

  const none = await run(["upgrade", "-y", "--except", "a"]);
  assert.equal(none.code, 11, none.stderr);

  // a made on generation 1 while the base is at 2: stopped, so it cannot be backed up.
  const generation = join(sandbox.virtdevHome, "system/generation");
  await Deno.chmod(generation, 0o644);
  await Deno.writeTextFile(generation, "2\n");
  const outdated = await run(["upgrade", "-y"]);
  assert.equal(outdated.code, 7, outdated.stderr);
  assert.match(outdated.stderr, /cannot be backed up \(they cannot start\): a\./);
  const skipped = await run(["upgrade", "-y", "--skip-outdated"]);
  assert.equal(skipped.code, 11, skipped.stderr);
});

Deno.test("maintain: 3 without a base; 7 naming the running projects; a failed boot leaves the base byte-identical", async () => {
  await using empty = await makeSandbox();
  assert.equal((await virtdev(empty, ["maintain", "-y"])).code, 3);

  await using sandbox = await sealed({ VIRTDEV_WAIT_TIMEOUT: "1" });
  const run = (args: string[], env?: Record<string, string>) => virtdev(sandbox, args, { env });
  assert.equal((await run(["key"])).code, 0);
  for (const name of ["a", "b"]) assert.equal((await run(["create", name])).code, 0);
  const before = await checksums(sandbox);
  try {
    assert.equal((await run(["start", "a"])).code, 0);
    const refused = await run(["maintain", "-y"]);
    assert.equal(refused.code, 7, refused.stderr);
    assert.match(refused.stderr, /Project VMs are running: a\./);
    assert.match(refused.stderr, /virtdev stop a/);
    const stopped = await run(["stop", "a"]);
    assert.equal(stopped.code, 0, stopped.stderr);

    // A session left behind by a killed maintain: removed, never resealed.
    await Deno.mkdir(join(sandbox.virtdevHome, "maintenance"));
    await Deno.writeTextFile(join(sandbox.virtdevHome, "maintenance/system.qcow2"), "half a copy");
    // The firmware finds no system on the copy: SSH never comes, the session is discarded.
    const failed = await run(["maintain", "-y"]);
    assert.equal(failed.code, 10, failed.stderr);
    assert.match(failed.stderr, /system\.qcow2: (100%|shared with the base)/);
    assert.match(failed.stderr, /The base is unchanged/);
    assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), false);
    assert.equal(await exists(join(sandbox.virtdevHome, "projects/maintenance")), false);
    assert.equal(await checksums(sandbox), before, "the base is byte-identical");
    assert.equal((await run(["generation"])).stdout, "1\n");
    assert.equal((await run(["status", "maintenance"])).code, 3, "no session is left");
    assert.equal((await run(["stop", "maintenance"])).code, 3);
  } finally {
    await killVms(sandbox, ["a", "maintenance"]);
  }
});
