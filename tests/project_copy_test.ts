/**
 * clone, move, ssh-config and disposable boots through the real CLI,
 * qemu-img and QEMU (firmware only) in a throw-away HOME; what the guest
 * sees of them is in the end-to-end test.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, killVms, runtimeFiles, sealedSandbox, sh, virtdev } from "./_helpers.ts";

async function checksums(files: readonly string[]): Promise<string> {
  return await sh("sha256sum", [...files]);
}

Deno.test("clone: the deltas, nvram, manifest and settings come along; a new host key and instance; the source stays", async () => {
  await using sandbox = await sealedSandbox("a");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const a = join(sandbox.virtdevHome, "projects/a");
  await sh("qemu-io", ["-c", "write -P 5 0 4M", join(a, "home.qcow2")]);
  await Deno.writeTextFile(join(a, "manifest"), "work/\n");
  assert.equal((await run("set", "a", "cpus=1", "memory=300")).code, 0);
  const config = join(sandbox.home, ".config/virtdev/projects/a");
  await Deno.mkdir(config, { recursive: true });
  await Deno.writeTextFile(join(config, "provision"), "echo hi\n");
  const before = await checksums(["system.qcow2", "home.qcow2", "nvram", "host_key"].map((f) => join(a, f)));

  const cloned = await run("clone", "a", "a2");
  assert.equal(cloned.code, 0, cloned.stderr);
  const a2 = join(sandbox.virtdevHome, "projects/a2");
  assert.equal(await checksums(["system.qcow2", "home.qcow2", "nvram", "host_key"].map((f) => join(a, f))), before);
  assert.equal(
    (await sh("sha256sum", [join(a2, "home.qcow2")])).split(" ")[0],
    (await sh("sha256sum", [join(a, "home.qcow2")])).split(" ")[0],
    "the delta is copied as it is",
  );
  const info = JSON.parse(await sh("qemu-img", ["info", "-U", "--output=json", join(a2, "home.qcow2")]));
  assert.equal(info["backing-filename"], join(sandbox.virtdevHome, "system/home.qcow2"), "still on the base");
  assert.notEqual(await Deno.readTextFile(join(a2, "host_key")), await Deno.readTextFile(join(a, "host_key")));
  assert.notEqual(await Deno.readTextFile(join(a2, "instance")), await Deno.readTextFile(join(a, "instance")));
  assert.match(await Deno.readTextFile(join(a2, "known_hosts")), /^virtdev-a2 ssh-ed25519 /);
  assert.equal(await Deno.readTextFile(join(a2, "manifest")), "work/\n");
  assert.equal((await run("set", "a2")).stdout, "cpus=1 memory=300M\n");
  assert.equal(await Deno.readTextFile(join(sandbox.home, ".config/virtdev/projects/a2/provision")), "echo hi\n");
  assert.equal(await exists(join(a2, "port")), false, "the clone gets its own port at its first start");

  assert.equal((await run("clone", "a", "a2")).code, 6, "an existing name");
  assert.equal((await run("clone", "a", "base")).code, 3, "a reserved name");
  assert.equal((await run("clone", "nope", "x")).code, 3);
  try {
    assert.equal((await run("start", "a")).code, 0);
    assert.equal((await run("clone", "a", "a3")).code, 4, "the source must be stopped");
  } finally {
    await killVms(sandbox, ["a"]);
  }
});

Deno.test("move: the project, its backups (markers too), configuration and pin move together", async () => {
  await using sandbox = await sealedSandbox("a");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const home = sandbox.virtdevHome;
  const snapshot = join(home, "backups/a/2026-01-01/10-00-00");
  await Deno.mkdir(join(snapshot, "tree"), { recursive: true });
  await Deno.writeTextFile(join(snapshot, "project"), "a\n");
  await Deno.mkdir(join(sandbox.home, ".config/virtdev/projects/a"), { recursive: true });
  const key = (await Deno.readTextFile(join(home, "projects/a/known_hosts"))).split(" ").slice(1).join(" ");

  const moved = await run("move", "a", "b");
  assert.equal(moved.code, 0, moved.stderr);
  assert.equal(await exists(join(home, "projects/a")), false);
  assert.ok(await exists(join(home, "projects/b/system.qcow2")));
  assert.equal(await Deno.readTextFile(join(home, "backups/b/2026-01-01/10-00-00/project")), "b\n");
  assert.ok(await exists(join(sandbox.home, ".config/virtdev/projects/b")));
  assert.equal(
    await Deno.readTextFile(join(home, "projects/b/known_hosts")),
    `virtdev-b ${key}`,
    "same key, new alias",
  );
  assert.equal((await run("move", "b", "base")).code, 3, "a reserved name");
  assert.equal((await run("create", "c")).code, 0);
  assert.equal((await run("move", "b", "c")).code, 6, "an existing project");
});

// Each crash point is finished by another command: every command that changes the store takes the lock one way.
for (
  const [point, next, code] of [
    ["move.journalled", ["create", "other"], 0],
    ["move.project-renamed", ["backup", "b"], 4],
    ["move.backups-renamed", ["maintain", "-y"], 4],
    ["move.markers-rewritten", ["create", "other"], 0],
    ["move.config-renamed", ["backup", "b"], 4],
  ] as const
) {
  Deno.test(`a move killed at ${point} is finished by the next command that takes the lock (${next[0]})`, async () => {
    await using sandbox = await sealedSandbox("a");
    const home = sandbox.virtdevHome;
    await Deno.mkdir(join(home, "backups/a/2026-01-01/10-00-00/tree"), { recursive: true });
    await Deno.writeTextFile(join(home, "backups/a/2026-01-01/10-00-00/project"), "a\n");
    await Deno.mkdir(join(sandbox.home, ".config/virtdev/projects/a"), { recursive: true });
    const killed = await virtdev(sandbox, ["move", "a", "b"], { env: { VIRTDEV_TEST_CRASH_AT: point } });
    assert.equal(killed.code, 137);
    // maintain stops after its lock: the base lacks a file (4); backup finds b stopped (4).
    if (next[0] === "maintain") await Deno.remove(join(home, "system/nvram"));
    const after = await virtdev(sandbox, [...next]);
    assert.equal(after.code, code, after.stderr);
    assert.match(after.stderr, /finished moving a to b/);
    assert.deepEqual(
      JSON.parse((await virtdev(sandbox, ["list", "--json"])).stdout).map((p: { name: string }) => p.name),
      next[0] === "create" ? ["b", "other"] : ["b"],
    );
    assert.equal(await Deno.readTextFile(join(home, "backups/b/2026-01-01/10-00-00/project")), "b\n");
    assert.ok(await exists(join(sandbox.home, ".config/virtdev/projects/b")));
    assert.match(await Deno.readTextFile(join(home, "projects/b/known_hosts")), /^virtdev-b /);
    assert.equal(await exists(join(home, "move.journal")), false);
  });
}

Deno.test("a project under a name only the original tool allowed is renamed by move, and then starts", async () => {
  await using sandbox = await sealedSandbox("a");
  const home = sandbox.virtdevHome;
  await Deno.rename(join(home, "projects/a"), join(home, "projects/-old"));
  assert.equal((await virtdev(sandbox, ["start", "--", "-old"])).code, 2);
  const moved = await virtdev(sandbox, ["move", "--", "-old", "fresh"]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.equal(
    await Deno.readTextFile(join(home, "projects/fresh/known_hosts")).then((t) => t.split(" ")[0]),
    "virtdev-fresh",
  );
  try {
    assert.equal((await virtdev(sandbox, ["start", "fresh"])).code, 0);
  } finally {
    await killVms(sandbox, ["fresh"]);
  }
});

Deno.test("ssh-config: a Host block per started project with its pin; --install adds one line, --uninstall removes it", async () => {
  await using sandbox = await sealedSandbox("a", "b");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const userConfig = join(sandbox.home, ".ssh/config");
  await Deno.mkdir(join(sandbox.home, ".ssh"), { mode: 0o700 });
  const original = "Host example\n  User someone\n\n# a comment\nHost *\n  ServerAliveInterval 30";
  await Deno.writeTextFile(userConfig, original, { mode: 0o644 });
  await Deno.writeTextFile(join(sandbox.virtdevHome, "projects/a/port"), "2301\n");

  const installed = await run("ssh-config", "--install");
  assert.equal(installed.code, 0, installed.stderr);
  const ours = join(sandbox.home, ".config/virtdev/ssh_config");
  assert.equal(installed.stdout, `${ours}\n`);
  const text = await Deno.readTextFile(ours);
  assert.match(text, /^Host a\.virtdev\n {2}HostName 127\.0\.0\.1\n {2}Port 2301\n {2}User dev\n/m);
  assert.ok(text.includes(`  IdentityFile ${join(sandbox.virtdevHome, "ssh/id")}\n`));
  assert.ok(text.includes(`  UserKnownHostsFile ${join(sandbox.virtdevHome, "projects/a/known_hosts")}\n`));
  assert.match(text, / {2}HostKeyAlias virtdev-a\n {2}UserKnownHostsFile .*\n {2}StrictHostKeyChecking yes\n/);
  assert.doesNotMatch(text, /Host b\.virtdev/, "b has never started: no port, no entry");
  assert.equal(await Deno.readTextFile(userConfig), `Include ${ours}\n${original}`);
  assert.equal((await Deno.stat(userConfig)).mode! & 0o777, 0o644, "its mode is kept");
  assert.equal((await run("ssh-config", "--install")).code, 0);
  assert.equal(await Deno.readTextFile(userConfig), `Include ${ours}\n${original}`, "one line, once");

  // Kept current: a clone (no port yet), a move, a destroy.
  assert.equal((await run("move", "a", "web")).code, 0);
  assert.match(await Deno.readTextFile(ours), /^Host web\.virtdev\n/m);
  assert.doesNotMatch(await Deno.readTextFile(ours), /^Host a\.virtdev/m);
  assert.equal((await run("destroy", "-y", "web")).code, 0);
  assert.doesNotMatch(await Deno.readTextFile(ours), /web\.virtdev/);

  assert.equal((await run("ssh-config", "--uninstall")).code, 0);
  assert.equal(await Deno.readTextFile(userConfig), original, "byte-identical after install and uninstall");
  assert.equal((await run("ssh-config", "--install", "--uninstall")).code, 64);
});

Deno.test("start --ephemeral: QEMU runs on overlays in run/; stop drops them and the project is byte-identical", async () => {
  await using sandbox = await sealedSandbox("a");
  const run = (...args: string[]) => virtdev(sandbox, args);
  const a = join(sandbox.virtdevHome, "projects/a");
  const files = ["system.qcow2", "home.qcow2", "nvram"].map((f) => join(a, f));
  const before = await checksums(files);
  try {
    const started = await run("start", "--ephemeral", "a");
    assert.equal(started.code, 0, started.stderr);
    const record = JSON.parse(await Deno.readTextFile(join(a, "run/runtime.json")));
    assert.equal(record.ephemeral, true);
    const args = (record.qemu.args as string[]).join(" ");
    assert.match(args, /file=[^ ]*\/run\/ephemeral\/system\.qcow2/);
    assert.match(args, /file=[^ ]*\/run\/ephemeral\/home\.qcow2/);
    assert.match(args, /file=[^ ]*\/run\/ephemeral\/nvram/);
    assert.doesNotMatch(args, new RegExp(`file=${a}/(system|home)\\.qcow2`));
    assert.equal(JSON.parse((await run("status", "--json", "a")).stdout).ephemeral, true);
    assert.equal((await run("stop", "a")).code, 0);
  } finally {
    await killVms(sandbox, ["a"]);
  }
  assert.equal(await exists(join(a, "run")), false, "the overlays went with the runtime files");
  assert.equal(await checksums(files), before);
  for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
  assert.equal((await run("run", "a")).code, 64, "run needs a command");
});
