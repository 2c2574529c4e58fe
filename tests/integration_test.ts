/**
 * Integration tests: the real CLI, the real qemu-img and ssh-keygen, in a
 * throw-away HOME.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, makeInstallation, makeSandbox, type Sandbox, sh, spawnVirtdev, virtdev } from "./_helpers.ts";

async function sealedSandbox(options: { readonly pattern?: number } = {}): Promise<Sandbox> {
  const sandbox = await makeSandbox();
  await makeInstallation(sandbox, options);
  const sealed = await virtdev(sandbox, ["seal"]);
  assert.equal(sealed.code, 0, sealed.stderr);
  return sandbox;
}

async function qemuImgInfo(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await sh("qemu-img", ["info", "-U", "--output=json", path]));
}

/** What a project directory holds when it is not running, sorted. */
const _projectFiles = [
  "generation",
  "home.qcow2",
  "host_key",
  "host_key.pub",
  "instance",
  "known_hosts",
  "net",
  "nvram",
  "system.qcow2",
];

Deno.test("key generates an ed25519 key once, prints only its path on stdout", async () => {
  await using sandbox = await makeSandbox();
  const first = await virtdev(sandbox, ["key"]);
  assert.equal(first.code, 0, first.stderr);
  const key = join(sandbox.virtdevHome, "ssh/id");
  assert.equal(first.stdout, `${key}\n`);
  assert.match(await Deno.readTextFile(`${key}.pub`), /^ssh-ed25519 \S+ virtdev\n$/);
  assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(join(sandbox.virtdevHome, "ssh"))).mode! & 0o777, 0o700);
  const before = await Deno.readTextFile(key);
  const second = await virtdev(sandbox, ["key"]);
  assert.equal(second.code, 0);
  assert.match(second.stderr, /already exists/);
  assert.equal(await Deno.readTextFile(key), before);
});

Deno.test("seal → create: absolute backing paths, a read-only base at generation 1", async () => {
  await using sandbox = await sealedSandbox();
  const base = join(sandbox.virtdevHome, "system");
  for (const file of ["system.qcow2", "home.qcow2", "nvram", "generation"]) {
    assert.equal((await Deno.stat(join(base, file))).mode! & 0o777, 0o444, file);
  }
  assert.equal(await Deno.readTextFile(join(base, "generation")), "1\n");
  assert.equal(await exists(join(sandbox.virtdevHome, "installation")), false);

  const created = await virtdev(sandbox, ["create", "web"]);
  assert.equal(created.code, 0, created.stderr);
  const project = join(sandbox.virtdevHome, "projects/web");
  assert.equal(created.stdout, `${project}\n`);
  for (const disk of ["system", "home"]) {
    const chain = JSON.parse(
      await sh("qemu-img", ["info", "--backing-chain", "--output=json", join(project, `${disk}.qcow2`)]),
    );
    assert.equal(chain.length, 2);
    assert.equal(chain[0]["backing-filename"], join(base, `${disk}.qcow2`));
    assert.equal(chain[0]["backing-filename-format"], "qcow2");
    assert.equal(chain[1].filename, join(base, `${disk}.qcow2`));
  }
  assert.equal(await Deno.readTextFile(join(project, "generation")), "1\n");
  assert.equal((await Deno.stat(join(project, "nvram"))).mode! & 0o777, 0o600);

  const again = await virtdev(sandbox, ["create", "web"]);
  assert.equal(again.code, 6);
  const reserved = await virtdev(sandbox, ["create", "maintenance"]);
  assert.equal(reserved.code, 3);
  const resealed = await virtdev(sandbox, ["seal"]);
  assert.equal(resealed.code, 3);
});

Deno.test("a VIRTDEV_HOME open to others is closed to 0700 by the next command, with a warning", async () => {
  await using sandbox = await sealedSandbox();
  await Deno.chmod(sandbox.virtdevHome, 0o755);
  const list = await virtdev(sandbox, ["list"]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stderr, /warning: .*virtdev was open to other users \(mode 755\); it is now 0700\./);
  assert.equal((await Deno.stat(sandbox.virtdevHome)).mode! & 0o777, 0o700);
  const again = await virtdev(sandbox, ["list"]);
  assert.doesNotMatch(again.stderr, /warning/);
  // A directory without virtdev's lock is not a store: the user's own directory is left alone.
  const mine = join(sandbox.home, "mine");
  await Deno.mkdir(mine, { mode: 0o755 });
  await Deno.chmod(mine, 0o755);
  const other = await virtdev(sandbox, ["list"], { env: { VIRTDEV_HOME: mine } });
  assert.doesNotMatch(other.stderr, /warning/);
  assert.equal((await Deno.stat(mine)).mode! & 0o777, 0o755);
});

Deno.test("create without a base exits 4; seal checks its inputs", async () => {
  await using sandbox = await makeSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 4);
  assert.equal((await virtdev(sandbox, ["seal"])).code, 3);
  await makeInstallation(sandbox);
  await Deno.remove(join(sandbox.virtdevHome, "installation/nvram"));
  const missing = await virtdev(sandbox, ["seal"]);
  assert.equal(missing.code, 5);
  assert.match(missing.stderr, /nvram is missing/);
  await Deno.writeTextFile(join(sandbox.virtdevHome, "installation/nvram"), "x");
  await Deno.writeTextFile(join(sandbox.virtdevHome, "installation/system.qcow2"), "not an image");
  assert.equal((await virtdev(sandbox, ["seal"])).code, 6);
});

Deno.test("bad project names exit 2 and create nothing on disk", async () => {
  await using sandbox = await makeSandbox();
  for (const name of ["../x", "a/b", "-x", "", "x".repeat(65), "name with space", "ü"]) {
    const result = await virtdev(sandbox, ["create", name]);
    assert.equal(result.code, 2, `${JSON.stringify(name)}: ${result.stderr}`);
    assert.match(result.stderr, /Invalid project name/);
    assert.equal(result.stdout, "");
  }
  assert.equal(await exists(sandbox.virtdevHome), false);
  assert.deepEqual((await Array.fromAsync(Deno.readDir(sandbox.home))).map((e) => e.name), []);
});

Deno.test("destroy removes exactly the project's directory, after a typed confirmation", async () => {
  await using sandbox = await sealedSandbox();
  for (const name of ["keep", "doomed"]) assert.equal((await virtdev(sandbox, ["create", name])).code, 0);
  const backups = join(sandbox.virtdevHome, "backups/doomed/2026-01-01/00-00-00");
  await Deno.mkdir(backups, { recursive: true });

  const eof = await virtdev(sandbox, ["destroy", "doomed"]);
  assert.equal(eof.code, 5);
  const wrong = await virtdev(sandbox, ["destroy", "doomed"], { stdin: "keep\n" });
  assert.equal(wrong.code, 5);
  assert.equal(await exists(join(sandbox.virtdevHome, "projects/doomed")), true);

  const confirmed = await virtdev(sandbox, ["destroy", "doomed"], { stdin: "doomed\n" });
  assert.equal(confirmed.code, 0, confirmed.stderr);
  assert.match(confirmed.stderr, /Backups preserved: 1 snapshot/);
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(join(sandbox.virtdevHome, "projects")))).map((e) => e.name),
    ["keep"],
  );
  assert.equal(await exists(backups), true);
  assert.equal(await exists(join(sandbox.virtdevHome, "system/system.qcow2")), true);
  assert.equal((await virtdev(sandbox, ["destroy", "-y", "doomed"])).code, 3);
  assert.equal((await virtdev(sandbox, ["destroy", "-y", "keep"])).code, 0);
});

async function assertPattern(path: string, pattern: number): Promise<void> {
  // qemu-io exits 0 even on a mismatch; it reports "Pattern verification failed".
  const output = await sh("qemu-io", ["-r", "-c", `read -P ${pattern} 0 1M`, path]);
  assert.doesNotMatch(output, /failed/i, output);
  assert.match(output, /read 1048576\/1048576 bytes/);
}

for (const mode of ["convert", "in-place"] as const) {
  Deno.test(`detach (${mode}) leaves standalone images that pass qemu-img check and keep the data`, async () => {
    await using sandbox = await sealedSandbox({ pattern: 0xab });
    assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
    const project = join(sandbox.virtdevHome, "projects/web");
    const args = mode === "in-place" ? ["detach", "--in-place", "-y", "web"] : ["detach", "web"];
    const result = await virtdev(sandbox, args, { stdin: "y\n" });
    assert.equal(result.code, 0, result.stderr);
    for (const disk of ["system.qcow2", "home.qcow2"]) {
      const info = await qemuImgInfo(join(project, disk));
      assert.equal(info["backing-filename"], undefined);
      await sh("qemu-img", ["check", "-q", join(project, disk)]);
      await assertPattern(join(project, disk), 0xab);
    }
    assert.equal(await Deno.readTextFile(join(project, "generation")), "detached\n");
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(project))).map((e) => e.name).sort(),
      _projectFiles,
    );
    assert.equal((await virtdev(sandbox, ["detach", "-y", "web"])).code, 5);
    const disk = JSON.parse((await virtdev(sandbox, ["disk", "--json", "web"])).stdout);
    assert.equal(disk.mode, "detached");
  });
}

Deno.test("detach asks first; EOF or 'n' changes nothing", async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  assert.equal((await virtdev(sandbox, ["detach", "web"])).code, 8);
  assert.equal((await virtdev(sandbox, ["detach", "web"], { stdin: "n\n" })).code, 8);
  const info = await qemuImgInfo(join(sandbox.virtdevHome, "projects/web/system.qcow2"));
  assert.ok(info["backing-filename"]);
});

const crashPoints = [
  "detach.converted-system",
  "detach.converted-home",
  "detach.backed-up-system",
  "detach.swapped-system",
  "detach.backed-up-home",
  "detach.swapped-home",
  "detach.committed",
];

for (const point of crashPoints) {
  Deno.test(`a detach killed with SIGKILL at ${point} is repaired by the next detach; no image is lost`, async () => {
    await using sandbox = await sealedSandbox({ pattern: 0x5a });
    assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
    const project = join(sandbox.virtdevHome, "projects/web");
    await sh("qemu-io", ["-c", "write -P 0x77 2M 1M", join(project, "home.qcow2")]);

    const crashed = await virtdev(sandbox, ["detach", "-y", "web"], { env: { VIRTDEV_TEST_CRASH_AT: point } });
    assert.equal(crashed.code, 137, `expected SIGKILL at ${point}: ${crashed.stderr}`);

    const next = await virtdev(sandbox, ["detach", "-y", "web"]);
    if (point === "detach.committed") {
      // The swap had committed: the next run finishes it and says it is done.
      assert.equal(next.code, 5, next.stderr);
    } else {
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, /interrupted detach/);
    }
    for (const disk of ["system.qcow2", "home.qcow2"]) {
      const path = join(project, disk);
      assert.equal((await qemuImgInfo(path))["backing-filename"], undefined, disk);
      await sh("qemu-img", ["check", "-q", path]);
      await assertPattern(path, 0x5a);
    }
    const output = await sh("qemu-io", ["-r", "-c", "read -P 0x77 2M 1M", join(project, "home.qcow2")]);
    assert.doesNotMatch(output, /failed/i);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(project))).map((e) => e.name).sort(),
      _projectFiles,
    );
  });
}

for (const file of ["system.qcow2", "home.qcow2", "nvram"]) {
  Deno.test(`a seal killed with SIGKILL after moving ${file} is finished by the next seal; nothing is lost`, async () => {
    await using sandbox = await makeSandbox();
    await makeInstallation(sandbox, { pattern: 0x3c });
    const crashed = await virtdev(sandbox, ["seal"], { env: { VIRTDEV_TEST_CRASH_AT: `seal.moved-${file}` } });
    assert.equal(crashed.code, 137, crashed.stderr);
    assert.equal(await exists(join(sandbox.virtdevHome, "system")), false, "no half base");
    const again = await virtdev(sandbox, ["seal"]);
    assert.equal(again.code, 0, again.stderr);
    const base = join(sandbox.virtdevHome, "system");
    for (const name of ["system.qcow2", "home.qcow2"]) await assertPattern(join(base, name), 0x3c);
    assert.equal(await Deno.readTextFile(join(base, "generation")), "1\n");
    assert.equal(await exists(join(sandbox.virtdevHome, "installation")), false);
    assert.equal(await exists(join(sandbox.virtdevHome, "system.sealing")), false);
  });
}

Deno.test("a destroy killed after its rename: the project is gone at once, and the next create clears the rest", async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const crashed = await virtdev(sandbox, ["destroy", "-y", "web"], {
    env: { VIRTDEV_TEST_CRASH_AT: "destroy.renamed" },
  });
  assert.equal(crashed.code, 137, crashed.stderr);
  assert.equal((await virtdev(sandbox, ["list", "--json"])).stdout, "[]\n");
  assert.equal((await virtdev(sandbox, ["status", "web"])).code, 3);
  const projects = join(sandbox.virtdevHome, "projects");
  const left = (await Array.fromAsync(Deno.readDir(projects))).map((e) => e.name);
  assert.equal(left.length, 1);
  assert.match(left[0], /^\.destroy-web-\d+$/);
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  assert.deepEqual((await Array.fromAsync(Deno.readDir(projects))).map((e) => e.name), ["web"]);
});

Deno.test("20 concurrent creates: each succeeds or exits 75 naming a live PID; list shows exactly the winners", async () => {
  await using sandbox = await sealedSandbox();
  const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
  const children = names.map((name) => spawnVirtdev(sandbox, ["create", name]));
  const pids = new Set(children.map((child) => child.pid));
  const results = await Promise.all(children.map(async (child) => {
    await child.stdin.close();
    const output = await child.output();
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
  }));
  const winners: string[] = [];
  results.forEach((result, i) => {
    if (result.code === 0) {
      winners.push(names[i]);
      return;
    }
    assert.equal(result.code, 75, result.stderr);
    const pid = Number(/PID (\d+)/.exec(result.stderr)?.[1]);
    assert.ok(pids.has(pid), `names a sibling's PID: ${result.stderr}`);
    assert.notEqual(pid, children[i].pid);
    assert.match(result.stderr, /'virtdev create p\d+'/);
  });
  assert.ok(winners.length >= 1);
  const entries = (await Array.fromAsync(Deno.readDir(join(sandbox.virtdevHome, "projects")))).map((e) => e.name);
  assert.deepEqual(entries.sort(), [...winners].sort());
  for (const name of winners) {
    const dir = join(sandbox.virtdevHome, "projects", name);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
      _projectFiles,
    );
  }
  const listed = JSON.parse((await virtdev(sandbox, ["list", "--json"])).stdout);
  assert.deepEqual(listed.map((p: { name: string }) => p.name), [...winners].sort());
});

Deno.test("a create killed mid-way leaves no half-created project", async () => {
  await using sandbox = await sealedSandbox();
  const crashed = await virtdev(sandbox, ["create", "web"], { env: { VIRTDEV_TEST_CRASH_AT: "create.deltas-made" } });
  assert.equal(crashed.code, 137);
  assert.equal(await exists(join(sandbox.virtdevHome, "projects/web")), false);
  assert.equal((await virtdev(sandbox, ["list", "--json"])).stdout, "[]\n");
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const entries = (await Array.fromAsync(Deno.readDir(join(sandbox.virtdevHome, "projects")))).map((e) => e.name);
  assert.deepEqual(entries, ["web"]);
});

Deno.test("list, status, generation, stale, path and disk report the store", async () => {
  await using sandbox = await sealedSandbox();
  for (const name of ["b", "a"]) assert.equal((await virtdev(sandbox, ["create", name])).code, 0);
  const table = await virtdev(sandbox, ["list"]);
  assert.match(table.stdout, /^PROJECT +PORT +STATUS +GENERATION\na +- +stopped +1\nb +- +stopped +1\n$/);
  assert.match(table.stderr, /Base generation: 1/);
  assert.equal((await virtdev(sandbox, ["status", "a"])).stdout, "stopped\n");
  assert.equal((await virtdev(sandbox, ["status", "zz"])).code, 3);
  assert.equal((await virtdev(sandbox, ["generation"])).stdout, "1\n");
  assert.equal((await virtdev(sandbox, ["generation", "a"])).stdout, "1\n");
  assert.equal((await virtdev(sandbox, ["stale"])).stdout, "");

  const generation = join(sandbox.virtdevHome, "system/generation");
  await Deno.chmod(generation, 0o644);
  await Deno.writeTextFile(generation, "2\n");
  assert.equal((await virtdev(sandbox, ["stale"])).stdout, "a\nb\n");
  const colored = await virtdev(sandbox, ["list", "--color=yes"]);
  assert.ok(colored.stdout.includes("\x1b[31m1\x1b[39m"), "a stale generation is red");

  const paths = sandbox.virtdevHome;
  assert.equal((await virtdev(sandbox, ["path", "a"])).stdout, `${paths}/projects/a\n`);
  assert.equal((await virtdev(sandbox, ["path", "a", "home-image"])).stdout, `${paths}/projects/a/home.qcow2\n`);
  assert.equal((await virtdev(sandbox, ["path", "base", "system-image"])).stdout, `${paths}/system/system.qcow2\n`);
  assert.equal((await virtdev(sandbox, ["path", "a", "manifest"])).code, 4);
  const manifest = join(sandbox.home, ".config/virtdev/projects/a/manifest");
  await Deno.mkdir(join(manifest, ".."), { recursive: true });
  await Deno.writeTextFile(manifest, ".bashrc\n");
  assert.equal((await virtdev(sandbox, ["path", "a", "manifest"])).stdout, `${manifest}\n`);
  await Deno.writeTextFile(join(paths, "projects/a/manifest"), ".profile\n");
  assert.equal((await virtdev(sandbox, ["path", "a", "manifest"])).stdout, `${paths}/projects/a/manifest\n`);
  assert.equal((await virtdev(sandbox, ["path", "a", "bogus"])).code, 64);

  const disk = JSON.parse((await virtdev(sandbox, ["disk", "--json", "a"])).stdout);
  assert.equal(disk.mode, "delta");
  assert.equal(disk.disks[0].virtualSize, 64 * 1024 * 1024);
  assert.equal(disk.disks[0].backing, `${paths}/system/system.qcow2`);
  assert.ok(disk.total > 0);
  const text = await virtdev(sandbox, ["disk", "a"]);
  assert.match(text.stdout, /system .* \/ 64\.0 MiB +system\.qcow2 \(backing: system\.qcow2\)/);

  const completion = await virtdev(sandbox, ["completion", "bash", "status", ""]);
  assert.match(completion.stdout, /^a$/m);
  assert.match(completion.stdout, /^b$/m);
});

Deno.test("nuke refuses to act outside the user's home or on a foreign directory", async () => {
  await using sandbox = await makeSandbox();
  const asHome = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n", env: { VIRTDEV_HOME: sandbox.home } });
  assert.equal(asHome.code, 3, asHome.stderr);
  const outside = join(sandbox.root, "outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "precious"), "data");
  const elsewhere = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n", env: { VIRTDEV_HOME: outside } });
  assert.equal(elsewhere.code, 3, elsewhere.stderr);
  assert.equal(await Deno.readTextFile(join(outside, "precious")), "data");

  // A VIRTDEV_HOME that holds things virtdev did not make is not deleted.
  await Deno.mkdir(sandbox.virtdevHome, { recursive: true });
  await Deno.writeTextFile(join(sandbox.virtdevHome, "thesis.tex"), "x");
  const wrong = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n" });
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /thesis\.tex/);
  assert.equal(await exists(join(sandbox.virtdevHome, "thesis.tex")), true);
  // Hidden entries count too.
  await Deno.remove(join(sandbox.virtdevHome, "thesis.tex"));
  await Deno.writeTextFile(join(sandbox.virtdevHome, ".notes"), "x");
  const hidden = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n" });
  assert.equal(hidden.code, 3, hidden.stderr);
  assert.match(hidden.stderr, /\.notes/);
  assert.equal(await exists(join(sandbox.virtdevHome, ".notes")), true);
});

Deno.test("nuke with VIRTDEV_CACHE pointing at the user's files refuses and deletes nothing", async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const documents = join(sandbox.home, "Documents");
  await Deno.mkdir(join(documents, "taxes"), { recursive: true });
  await Deno.writeTextFile(join(documents, "taxes/2026.pdf"), "precious");
  await Deno.writeTextFile(join(documents, ".hidden-notes"), "precious too");
  const before = await sh("find", [sandbox.root, "-printf", "%p %s\n"]);
  const nuke = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n", env: { VIRTDEV_CACHE: documents } });
  assert.equal(nuke.code, 3, nuke.stderr);
  assert.match(nuke.stderr, /VIRTDEV_CACHE.*\.hidden-notes, taxes/);
  assert.equal(await sh("find", [sandbox.root, "-printf", "%p %s\n"]), before, "not one file deleted");
});

Deno.test("nuke deletes virtdev's data after typing 'nuke', never following links out", async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const outside = join(sandbox.root, "outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "precious"), "data");
  await Deno.symlink(outside, join(sandbox.virtdevHome, "projects/web/link"));
  const config = join(sandbox.home, ".config/virtdev/projects/web");
  await Deno.mkdir(config, { recursive: true });
  await Deno.writeTextFile(join(config, "manifest"), ".bashrc\n");

  assert.equal((await virtdev(sandbox, ["nuke"])).code, 5);
  assert.equal((await virtdev(sandbox, ["nuke"], { stdin: "yes\n" })).code, 5);
  assert.equal(await exists(join(sandbox.virtdevHome, "system")), true);

  const done = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n" });
  assert.equal(done.code, 0, done.stderr);
  assert.equal(await exists(sandbox.virtdevHome), false);
  assert.equal(await Deno.readTextFile(join(outside, "precious")), "data");
  assert.equal(await exists(join(config, "manifest")), true);
});
