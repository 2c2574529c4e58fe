/**
 * Project VMs with the real QEMU but no guest OS (blank disks, OVMF only):
 * start, port choice, state after a crash, stop with the SIGTERM fallback,
 * and the systemd supervisor's calls. Fast; the real guest is in e2e_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import {
  exists,
  killVms,
  makeInstallation,
  makeSandbox,
  repoRoot,
  runtimeFiles,
  type Sandbox,
  smallVmEnv,
  spawnVirtdev,
  taskArguments,
  virtdev,
} from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });

async function vmSandbox(env: Record<string, string> = {}): Promise<Sandbox> {
  const sandbox = await makeSandbox({ ...smallVmEnv, ...env });
  await makeInstallation(sandbox, { firmwareVars: firmware.vars });
  for (const args of [["seal"], ["create", "a"], ["create", "b"]]) {
    const result = await virtdev(sandbox, args);
    assert.equal(result.code, 0, result.stderr);
  }
  return sandbox;
}

Deno.test("start: a kept port, status/port/pid, 6 when running; stop falls back to SIGTERM and leaves no runtime files", async () => {
  await using sandbox = await vmSandbox();
  const dir = join(sandbox.virtdevHome, "projects", "a");
  try {
    const start = await virtdev(sandbox, ["start", "a"]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stderr, /without KVM/);
    const port = Number((await virtdev(sandbox, ["port", "a"])).stdout.trim());
    assert.ok(port >= 2222);
    assert.equal((await Deno.readTextFile(join(dir, "port"))).trim(), String(port));
    assert.equal(
      (await virtdev(sandbox, ["status", "a"])).stdout.trim(),
      "starting",
      "no ready line from a blank disk",
    );
    const pid = Number((await virtdev(sandbox, ["pid", "a"])).stdout.trim());
    assert.ok(pid > 1);
    // The host agent reports the launch, and keeps QEMU and its console.
    const agent = JSON.parse(await Deno.readTextFile(join(dir, "run/agent.json")));
    assert.equal(agent.phase, "running");
    assert.equal(agent.readiness, "pending");
    assert.notEqual(agent.pid, pid, "the agent is not QEMU");
    assert.equal((await Deno.stat(join(dir, "run"))).mode! & 0o777, 0o700);
    for (const socket of ["qmp.sock", "monitor.sock", "console.sock"]) {
      assert.equal((await Deno.lstat(join(dir, "run", socket))).mode! & 0o777, 0o600, socket);
    }
    assert.equal((await Deno.stat(join(dir, "console.log"))).mode! & 0o777, 0o600);
    const again = await virtdev(sandbox, ["start", "a"]);
    assert.equal(again.code, 6);
    assert.match(again.stderr, new RegExp(`already running \\(PID ${pid}\\)`));
    // A blank disk has no OS to answer the ACPI power button.
    const stop = await virtdev(sandbox, ["stop", "a"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /did not halt within 2s; sending SIGTERM/);
    assert.match(stop.stderr, /stopped: a \(terminated\)/);
    for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
    assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
    assert.equal((await virtdev(sandbox, ["port", "a"])).code, 5);
    assert.equal((await virtdev(sandbox, ["pid", "a"])).code, 4);
    assert.equal((await virtdev(sandbox, ["stop", "a"])).code, 4);
    // The port is kept for the next start.
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    assert.equal((await virtdev(sandbox, ["port", "a"])).stdout.trim(), String(port));
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("kill -9 of QEMU: status says stopped at once, and start cleans up and works again", async () => {
  await using sandbox = await vmSandbox();
  const dir = join(sandbox.virtdevHome, "projects", "a");
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const pid = Number((await virtdev(sandbox, ["pid", "a"])).stdout.trim());
    Deno.kill(pid, "SIGKILL");
    let state = "";
    for (let i = 0; i < 100; i++) {
      state = (await virtdev(sandbox, ["status", "a"])).stdout.trim();
      if (state === "stopped") break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(state, "stopped");
    assert.equal(await exists(join(dir, "run/qmp.sock")), true, "the crash left its sockets");
    assert.equal((await virtdev(sandbox, ["ssh", "a", "true"])).code, 5);
    const start = await virtdev(sandbox, ["start", "a"]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stderr, /Cleaned up after a VM that had ended/);
    assert.match(await Deno.readTextFile(join(dir, "vm.log")), /found the VM gone/);
    assert.notEqual(Number((await virtdev(sandbox, ["pid", "a"])).stdout.trim()), pid);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

/** Makes the key, starts project a (firmware only) and returns its console log once it matches `pattern` (2 min at most). */
async function _startUntilConsole(sandbox: Sandbox, pattern: RegExp): Promise<string> {
  assert.equal((await virtdev(sandbox, ["key"])).code, 0);
  assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
  const log = join(sandbox.virtdevHome, "projects", "a", "console.log");
  let text = "";
  for (let i = 0; i < 1200 && !pattern.test(text); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    text = await Deno.readTextFile(log).catch(() => "");
  }
  return text;
}

Deno.test("wait that times out shows the console's last lines, without its escape sequences", async () => {
  await using sandbox = await vmSandbox();
  try {
    // OVMF draws its boot screen on the serial console with escape sequences,
    // then says which boot options failed.
    // deno-lint-ignore no-control-regex -- the escape character is what is looked for.
    const drawnThenSaid = /\x1b[^]*BdsDxe/;
    assert.match(await _startUntilConsole(sandbox, drawnThenSaid), drawnThenSaid, "escape sequences, then text");
    const wait = await virtdev(sandbox, ["wait", "a"], { env: { VIRTDEV_WAIT_TIMEOUT: "1" } });
    assert.equal(wait.code, 7, wait.stderr);
    assert.match(wait.stderr, /The console's last lines:\n(hint: {3}.*\n)*hint: {3}.*BdsDxe/);
    // deno-lint-ignore no-control-regex -- no control character may reach the terminal.
    assert.doesNotMatch(wait.stderr, /[\x00-\x08\x0b-\x1f\x7f]/);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("a guest killed before its ready line: wait ends at once with the console's last lines, not at its timeout", async () => {
  await using sandbox = await vmSandbox();
  try {
    assert.match(await _startUntilConsole(sandbox, /BdsDxe/), /BdsDxe/, "the firmware printed before it was killed");
    // A timeout far longer than any test: had wait not noticed, it would end with 7, not 6.
    const pid = Number((await virtdev(sandbox, ["pid", "a"])).stdout.trim());
    const child = spawnVirtdev(sandbox, ["wait", "a"], { env: { VIRTDEV_WAIT_TIMEOUT: "3600" } });
    await child.stdin.close();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!/Waiting for a/.test(said)) {
      const { value, done } = await stderr.read();
      assert.ok(!done, said);
      said += value;
    }
    // wait has begun; two seconds on it is in its loop, looking at the VM: end the VM under it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    Deno.kill(pid, "SIGKILL");
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) break;
      said += value;
    }
    const wait = { code: (await child.status).code, stderr: said };
    await child.stdout.cancel();
    assert.equal(wait.code, 6, wait.stderr);
    assert.match(wait.stderr, /exited before SSH became available/);
    assert.match(wait.stderr, /The console's last lines:\n(hint: {3}.*\n)*hint: {3}.*BdsDxe/);
    // deno-lint-ignore no-control-regex -- no control character may reach the terminal.
    assert.doesNotMatch(wait.stderr, /[\x00-\x08\x0b-\x1f\x7f]/);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("a pidfile naming another live process is not mistaken for the VM", async () => {
  await using sandbox = await vmSandbox();
  const dir = join(sandbox.virtdevHome, "projects", "a");
  // PID 1 and this test runner are alive, and neither is this project's QEMU.
  await Deno.mkdir(join(dir, "run"));
  await Deno.writeTextFile(join(dir, "run/qemu.pid"), `${Deno.pid}\n`);
  await Deno.writeTextFile(join(dir, "run/runtime.json"), '{"supervisor":"process","port":2222,"startedAt":"x"}\n');
  assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
  const stop = await virtdev(sandbox, ["stop", "a"]);
  assert.equal(stop.code, 4);
  for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
});

Deno.test("ports: an explicit busy port exits 8, a bad one 7; a kept port taken by another program moves", async () => {
  await using sandbox = await vmSandbox();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = (listener.addr as Deno.NetAddr).port;
  try {
    const taken = await virtdev(sandbox, ["start", "a", String(busy)]);
    assert.equal(taken.code, 8, taken.stderr);
    assert.match(taken.stderr, new RegExp(`Port ${busy} is already in use`));
    for (const bad of ["80", "70000", "22x"]) assert.equal((await virtdev(sandbox, ["start", "a", bad])).code, 7, bad);
    assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
    // A kept port that is now busy is replaced, with a warning.
    await Deno.writeTextFile(join(sandbox.virtdevHome, "projects", "a", "port"), `${busy}\n`);
    const moved = await virtdev(sandbox, ["start", "a"]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stderr, new RegExp(`port ${busy} is taken by another program`));
    assert.notEqual((await virtdev(sandbox, ["port", "a"])).stdout.trim(), String(busy));
  } finally {
    listener.close();
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("two starts at once: the second queues behind the first, and they get different ports", async () => {
  await using sandbox = await vmSandbox();
  try {
    const results = await Promise.all(["a", "b"].map((name) => spawnVirtdev(sandbox, ["start", name]).output()));
    for (const result of results) assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    const ports = new Set<string>();
    for (const name of ["a", "b"]) ports.add((await virtdev(sandbox, ["port", name])).stdout.trim());
    assert.equal(ports.size, 2, [...ports].join(" "));
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("a lock held with a bare PID (the original tool, flock(1)): create exits 75 naming it, start queues", async () => {
  await using sandbox = await vmSandbox();
  const lockFile = join(sandbox.virtdevHome, "lock");
  const marker = join(sandbox.root, "holder-done");
  // flock(1) holds the lock while its shell writes its own PID, bare, as the original tool did.
  const holder = new Deno.Command("flock", {
    args: ["-x", lockFile, "sh", "-c", `echo $$ > '${lockFile}'; sleep 3; touch '${marker}'`],
  }).spawn();
  try {
    let record = "";
    for (let i = 0; i < 200 && !/^\d+\n$/.test(record); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      record = await Deno.readTextFile(lockFile);
    }
    const pid = record.trim();
    assert.match(pid, /^\d+$/);
    const create = await virtdev(sandbox, ["create", "c"]);
    assert.equal(create.code, 75, create.stderr);
    assert.match(create.stderr, new RegExp(`PID ${pid}\\)`));
    assert.doesNotMatch(create.stderr, /PID unknown/);
    const start = await virtdev(sandbox, ["start", "a"]);
    assert.equal(start.code, 0, start.stderr);
    assert.equal(await exists(marker), true, "start went ahead only after the holder had finished");
  } finally {
    await holder.status;
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("console and monitor: 4 when the VM is not running, 5 when its socket is gone", async () => {
  await using sandbox = await vmSandbox();
  try {
    for (const command of ["console", "monitor"]) {
      const stopped = await virtdev(sandbox, [command, "a"]);
      assert.equal(stopped.code, 4, stopped.stderr);
      assert.match(stopped.stderr, /not running/);
    }
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const run = join(sandbox.virtdevHome, "projects", "a", "run");
    for (const [command, socket] of [["console", "console.sock"], ["monitor", "monitor.sock"]]) {
      await Deno.remove(join(run, socket));
      const missing = await virtdev(sandbox, [command, "a"]);
      assert.equal(missing.code, 5, missing.stderr);
      assert.match(missing.stderr, new RegExp(`${command} socket of a is missing`));
    }
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("status --json says 'stopping' while a stop is in progress", async () => {
  await using sandbox = await vmSandbox({ VIRTDEV_STOP_TIMEOUT: "4" });
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    // A blank disk ignores the power button, so the stop waits for its timeout.
    const stop = spawnVirtdev(sandbox, ["stop", "a"]);
    const seen: string[] = [];
    for (let i = 0; i < 40 && !seen.includes("stopping"); i++) {
      const status = JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout);
      seen.push(status.state);
      if (status.state === "stopping") {
        assert.equal(status.pid, Number((await virtdev(sandbox, ["pid", "a"])).stdout.trim()));
        assert.equal(typeof status.port, "number");
      }
    }
    assert.ok(seen.includes("stopping"), seen.join(" "));
    assert.equal((await stop.output()).code, 0);
    assert.equal(JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout).state, "stopped");
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("log prints vm.log; log -f follows it until interrupted", async () => {
  await using sandbox = await vmSandbox();
  try {
    const none = await virtdev(sandbox, ["log", "a"]);
    assert.equal(none.code, 0);
    assert.match(none.stderr, /No log yet/);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const log = await virtdev(sandbox, ["log", "a"]);
    assert.equal(log.code, 0, log.stderr);
    assert.match(log.stdout, /^\S+Z start: host agent .*__host-agent /m);
    assert.match(log.stdout, /^\S+Z passt started \(PID \d+\)$/m);
    assert.match(log.stdout, /^\S+Z started: port \d+, tcg, supervisor process, network passt \(egress wan\)$/m);
    const follow = spawnVirtdev(sandbox, ["log", "-f", "a"]);
    const reader = follow.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const read = async (pattern: RegExp) => {
      while (!pattern.test(seen)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
    };
    await read(/started: port/);
    assert.equal((await virtdev(sandbox, ["stop", "a"])).code, 0);
    await read(/stopped: terminated/);
    assert.match(seen, /stopped: terminated/, "a line appended after -f began is printed");
    follow.kill("SIGINT");
    await reader.cancel();
    assert.equal((await follow.status).code, 0);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("the generation gate refuses a project made on another base (11) unless detached", async () => {
  await using sandbox = await vmSandbox();
  const generation = join(sandbox.virtdevHome, "projects", "a", "generation");
  await Deno.writeTextFile(generation, "2\n");
  const mismatch = await virtdev(sandbox, ["start", "a"]);
  assert.equal(mismatch.code, 11);
  assert.match(mismatch.stderr, /project generation 2, base 1/);
  await Deno.writeTextFile(generation, "x\n");
  assert.equal((await virtdev(sandbox, ["start", "a"])).code, 14);
  await Deno.remove(generation);
  assert.equal((await virtdev(sandbox, ["start", "a"])).code, 10);
  assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
});

Deno.test("monitor: piped HMP commands get their answers", async () => {
  await using sandbox = await vmSandbox();
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const monitor = await virtdev(sandbox, ["monitor", "a"], { stdin: "info status\n" });
    assert.equal(monitor.code, 0, monitor.stderr);
    assert.match(monitor.stdout, /VM status: running/);
    assert.equal((await virtdev(sandbox, ["monitor", "b"])).code, 4);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("install: a missing image exits 3; an image that never powers off times out (10) with its console tail, leaving nothing", async () => {
  await using sandbox = await makeSandbox({
    VIRTDEV_ACCEL: "tcg",
    VIRTDEV_VM_MEMORY: "256",
    VIRTDEV_VM_CPUS: "1",
    // Long enough for the firmware to print something on a busy machine
    // (its first console byte comes 4 s in under TCG; in one CI run, after 8 s).
    VIRTDEV_INSTALL_TIMEOUT: "20",
  });
  assert.equal((await virtdev(sandbox, ["key"])).code, 0);
  const missing = await virtdev(sandbox, ["install", "--image", join(sandbox.root, "nope.qcow2")]);
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /Image not found/);
  assert.equal((await virtdev(sandbox, ["install", "--image", "x", "--home-size", "lots"])).code, 64);

  // A blank disk: the firmware finds nothing to boot and the VM never powers off.
  const blank = join(sandbox.root, "blank.qcow2");
  await new Deno.Command("qemu-img", { args: ["create", "-q", "-f", "qcow2", blank, "64M"] }).output();
  const install = await virtdev(sandbox, ["install", "--image", blank]);
  assert.equal(install.code, 10, install.stderr);
  assert.match(install.stderr, /did not power off within 20s/);
  assert.match(install.stderr, /Last \d+ console lines:\n {2}\| /);
  assert.match(install.stderr, /Booting the install VM.*: failed/);
  const left = [];
  for await (const entry of Deno.readDir(sandbox.virtdevHome)) left.push(entry.name);
  assert.deepEqual(left.sort(), ["lock", "ssh"], "no installation/ and no hidden work directory");

  // Without QEMU installed: 69, naming the package.
  const noQemu = await virtdev(sandbox, ["install", "--image", blank], { env: { PATH: await pathWithout(sandbox) } });
  assert.equal(noQemu.code, 69, noQemu.stderr);
  assert.match(noQemu.stderr, /qemu-system-x86_64 is not installed.*\n.*hint: Install QEMU: 'pacman -S qemu-base'/);
});

/** A PATH with the tools virtdev runs, but not qemu-system-x86_64 (nor passt), plus those in `extra`. */
async function pathWithout(sandbox: Sandbox, extra: readonly string[] = []): Promise<string> {
  const bin = join(sandbox.root, `bin-${extra.join("-") || "without-qemu"}`);
  await Deno.mkdir(bin, { recursive: true });
  for (const tool of ["deno", "qemu-img", "ssh-keygen", "ssh", "ps", "kill", "rsync", ...extra]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "piped" }).output();
    const path = new TextDecoder().decode(found.stdout).trim();
    if (path) await Deno.symlink(path, join(bin, tool)).catch(() => {});
  }
  return bin;
}

Deno.test("start without QEMU installed exits 69 with the package to install, leaving no runtime files", async () => {
  await using sandbox = await vmSandbox();
  const start = await virtdev(sandbox, ["start", "a"], { env: { PATH: await pathWithout(sandbox, ["passt"]) } });
  assert.equal(start.code, 69, start.stderr);
  assert.match(start.stderr, /qemu-system-x86_64 is not installed/);
  assert.match(start.stderr, /hint: Install QEMU/);
  for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
  assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
});

Deno.test("nuke refuses while a project VM runs (4) and deletes nothing", async () => {
  await using sandbox = await vmSandbox();
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const nuke = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n" });
    assert.equal(nuke.code, 4, nuke.stderr);
    assert.match(nuke.stderr, /Project a is running/);
    assert.equal(await exists(join(sandbox.virtdevHome, "system/system.qcow2")), true);
    assert.notEqual((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("console on a terminal: Ctrl-] detaches and leaves the VM running", async () => {
  await using sandbox = await vmSandbox();
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    // script(1) gives the console a pseudo-terminal, as a user's shell would.
    const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
    const command = [Deno.execPath(), ...taskArguments(sandbox.home), "console", "a"].map(quote).join(" ");
    const child = new Deno.Command("script", {
      args: ["-q", "-e", "-c", command, "/dev/null"],
      env: { ...sandbox.env, SHELL: "/bin/sh" },
      clearEnv: true,
      cwd: repoRoot,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A console that ignores Ctrl-] would never end: end it, and fail.
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const deadline = Date.now() + 20_000;
    while (!seen.includes("Detach with Ctrl-]") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /Attached to the serial console of a/);
    const writer = child.stdin.getWriter();
    await writer.write(new Uint8Array([0x1d]));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    const status = await child.status;
    clearTimeout(killer);
    await writer.close().catch(() => {});
    assert.equal(status.code, 0, seen);
    assert.match(seen, /Detached\./);
    assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "starting", "the VM still runs");
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("restore checks the snapshot before it sends anything: exits 8, 10, 12, 23, 24, 25, 26", async () => {
  await using sandbox = await vmSandbox();
  const backups = join(sandbox.virtdevHome, "backups", "a");
  const snapshot = join(backups, "2026-01-01", "00-00-00");
  const restore = async (expected: number, pattern: RegExp) => {
    const result = await virtdev(sandbox, ["restore", "a", "2026-01-01/00-00-00"]);
    assert.equal(result.code, expected, result.stderr);
    assert.match(result.stderr, pattern);
  };
  try {
    assert.equal((await virtdev(sandbox, ["key"])).code, 0);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const none = await virtdev(sandbox, ["restore", "a"]);
    assert.equal(none.code, 8, none.stderr);
    assert.match(none.stderr, /has no snapshots/);
    await restore(16, /No snapshot 2026-01-01\/00-00-00 of a/);
    await Deno.mkdir(snapshot, { recursive: true });
    await restore(24, /no 'project' marker/);
    await Deno.writeTextFile(join(snapshot, "project"), "b\n");
    await restore(12, /belongs to project 'b'/);
    await Deno.writeTextFile(join(snapshot, "project"), "a\n");
    await restore(10, /has no manifest/);
    await Deno.writeTextFile(join(snapshot, "manifest"), "../../etc\n");
    await restore(26, /\.\./);
    await Deno.writeTextFile(join(snapshot, "manifest"), "work\n");
    await restore(23, /has no tree/);
    // Symlinks where virtdev's own parts of a snapshot belong are refused, never followed.
    const elsewhere = join(sandbox.root, "elsewhere");
    await Deno.mkdir(join(elsewhere, "work"), { recursive: true });
    await Deno.writeTextFile(join(elsewhere, "work/host-file"), "not for the guest");
    await Deno.symlink(elsewhere, join(snapshot, "tree"));
    await restore(25, /tree\/ is not a real directory/);
    await Deno.remove(join(snapshot, "tree"));
    await Deno.mkdir(join(snapshot, "tree"));
    await Deno.remove(join(snapshot, "project"));
    await Deno.writeTextFile(join(elsewhere, "project"), "a\n");
    await Deno.symlink(join(elsewhere, "project"), join(snapshot, "project"));
    await restore(25, /project is not a regular file/);
    await Deno.rename(snapshot, join(elsewhere, "snapshot"));
    await Deno.remove(join(elsewhere, "snapshot", "project"));
    await Deno.writeTextFile(join(elsewhere, "snapshot", "project"), "a\n");
    await Deno.symlink(join(elsewhere, "snapshot"), snapshot);
    await restore(25, /is not a real directory/);
    // recreate checks a requested snapshot before anything is changed.
    const recreate = await virtdev(sandbox, [
      "recreate",
      "-y",
      "--no-backup",
      "--snapshot",
      "2026-02-02/00-00-00",
      "a",
    ]);
    assert.equal(recreate.code, 8, recreate.stderr);
    assert.match(recreate.stderr, /No snapshot 2026-02-02\/00-00-00 of a.*\n.*Nothing was changed/);
    assert.notEqual((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped", "the VM was not touched");
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("backup, restore and transfer refuse an rsync older than 3.4.0, naming it (stubbed: no rsync older than 3.4 on this machine)", async () => {
  await using sandbox = await vmSandbox();
  const bin = join(sandbox.root, "old-rsync");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "rsync"),
    "#!/bin/sh\necho 'rsync  version 3.2.7  protocol version 31'\necho 'Copyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.'\n",
    { mode: 0o755 },
  );
  const env = { PATH: `${bin}:${sandbox.env.PATH}` };
  try {
    assert.equal((await virtdev(sandbox, ["key"])).code, 0);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const configDir = join(sandbox.home, ".config/virtdev/projects/a");
    await Deno.mkdir(configDir, { recursive: true });
    await Deno.writeTextFile(join(configDir, "manifest"), "work\n");
    const snapshot = join(sandbox.virtdevHome, "backups/a/2026-01-01/00-00-00");
    await Deno.mkdir(join(snapshot, "tree"), { recursive: true });
    await Deno.writeTextFile(join(snapshot, "project"), "a\n");
    await Deno.writeTextFile(join(snapshot, "manifest"), "work\n");
    for (const args of [["backup", "a"], ["restore", "a"], ["transfer", "a", ":x", join(sandbox.root, "x")]]) {
      const result = await virtdev(sandbox, args, { env });
      assert.equal(result.code, 69, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /The host's rsync is 3\.2\.7; virtdev needs 3\.4\.0 or later/);
      assert.match(result.stderr, /CVE-2024-12084/);
      assert.match(result.stderr, /hint: Install rsync 3\.4\.0 or later: 'pacman -S rsync'/);
    }
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("network: passt behind the egress filter by default; SLIRP only when asked, for full; no silent fallback (69)", async () => {
  await using sandbox = await vmSandbox();
  const network = async (name: string) =>
    JSON.parse((await virtdev(sandbox, ["status", "--json", name])).stdout).network;
  try {
    const passt = await virtdev(sandbox, ["start", "a"]);
    assert.equal(passt.code, 0, passt.stderr);
    assert.doesNotMatch(passt.stderr, /loopback/);
    assert.deepEqual(await network("a"), { backend: "passt", egress: "wan", filtered: true });
    const qemu = (await virtdev(sandbox, ["pid", "a"])).stdout.trim();
    const args = await Deno.readTextFile(`/proc/${qemu}/cmdline`);
    // QEMU talks to the filter, never to passt.
    assert.match(args, /stream,id=net0,server=off,addr\.type=unix,addr\.path=\S*\/run\/net\/vm\.sock/);
    assert.doesNotMatch(args, /hostfwd/);
    const agent = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/agent.json")));
    assert.ok(agent.filterPid > 0 && agent.passtPid > 0, JSON.stringify(agent));

    const refused = await virtdev(sandbox, ["start", "b"], { env: { VIRTDEV_NET_BACKEND: "slirp" } });
    assert.equal(refused.code, 69, refused.stderr);
    assert.match(refused.stderr, /Zone 'wan' cannot be enforced with VIRTDEV_NET_BACKEND=slirp/);
    const slirp = await virtdev(sandbox, ["start", "--net", "full", "b"], { env: { VIRTDEV_NET_BACKEND: "slirp" } });
    assert.equal(slirp.code, 0, slirp.stderr);
    assert.match(
      slirp.stderr,
      /warning: VIRTDEV_NET_BACKEND=slirp: the guest can reach services on this host's loopback/,
    );
    assert.deepEqual(await network("b"), { backend: "slirp", egress: "full", filtered: false });
    assert.equal((await virtdev(sandbox, ["stop", "b"])).code, 0);

    const noPasst = { PATH: await pathWithout(sandbox, ["qemu-system-x86_64"]) };
    for (const zone of ["wan", "full"]) {
      const missing = await virtdev(sandbox, ["start", "--net", zone, "b"], { env: noPasst });
      assert.equal(missing.code, 69, missing.stderr);
      assert.match(missing.stderr, /passt is not installed, so zone '(wan|full)' cannot be enforced/);
      assert.match(missing.stderr, /hint: Install passt: 'pacman -S passt'/);
    }
    const none = await virtdev(sandbox, ["start", "--net", "none", "b"], { env: noPasst });
    assert.equal(none.code, 0, `zone none needs no passt: ${none.stderr}`);
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("the zone is kept in the project; start --net overrides it for one boot; a VM in none takes a new zone at its next start", async () => {
  await using sandbox = await vmSandbox();
  const egress = async () => JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout).network;
  try {
    assert.equal((await virtdev(sandbox, ["net", "a"])).stdout, "wan\n");
    assert.equal((await virtdev(sandbox, ["net", "a", "none"])).code, 0);
    assert.equal((await virtdev(sandbox, ["net", "a"])).stdout, "none\n");
    assert.equal((await virtdev(sandbox, ["net", "a", "internet"])).code, 64);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    assert.deepEqual(await egress(), { backend: "slirp", egress: "none", filtered: false });
    const qemu = (await virtdev(sandbox, ["pid", "a"])).stdout.trim();
    assert.match(
      await Deno.readTextFile(`/proc/${qemu}/cmdline`),
      /user,id=net0,restrict=on,hostfwd=tcp:127\.0\.0\.1:\d+-:22/,
    );
    const later = await virtdev(sandbox, ["net", "a", "full"]);
    assert.match(
      later.stderr,
      /runs without the egress filter \(started in zone none\); 'full' applies from its next start/,
    );
    assert.equal((await virtdev(sandbox, ["stop", "a"])).code, 0);
    assert.equal((await virtdev(sandbox, ["start", "--net", "none", "a"])).code, 0);
    assert.deepEqual(await egress(), { backend: "slirp", egress: "none", filtered: false });
    assert.equal((await virtdev(sandbox, ["net", "a"])).stdout, "full\n", "--net is for one boot");
    assert.equal((await virtdev(sandbox, ["stop", "a"])).code, 0);
    // Behind the filter a change is in force at once, and the filter says so.
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const live = await virtdev(sandbox, ["net", "a", "allow"]);
    assert.match(live.stderr, /Zone of a: allow \(in force now\)/);
    const policy = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/net/policy.json")));
    assert.equal(policy.zone, "allow");
    const report = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/net/filter.json")));
    assert.equal(report.serial, policy.serial, "the filter took the policy the command wrote");
    assert.equal(report.zone, "allow");
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("passt killed while the VM runs: status says degraded, stop works, and start works again", async () => {
  await using sandbox = await vmSandbox();
  try {
    assert.equal((await virtdev(sandbox, ["key"])).code, 0);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    const agent = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/agent.json")));
    assert.equal(agent.network, "up");
    Deno.kill(agent.passtPid, "SIGKILL");
    let state = "";
    for (let i = 0; i < 100 && state !== "degraded"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      state = (await virtdev(sandbox, ["status", "a"])).stdout.trim();
    }
    assert.equal(state, "degraded");
    const wait = await virtdev(sandbox, ["wait", "a"]);
    assert.equal(wait.code, 11, wait.stderr);
    assert.match(wait.stderr, /passt process or its egress filter has died/);
    assert.match(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/vm.log")), /passt exited \(SIGKILL\)/);
    const stop = await virtdev(sandbox, ["stop", "a"]);
    assert.equal(stop.code, 0, stop.stderr);
    for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    assert.equal(
      JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/agent.json"))).network,
      "up",
    );
  } finally {
    await killVms(sandbox, ["a", "b"]);
  }
});

Deno.test("forward: kept while stopped, listed with --json; bad, duplicate and busy ports refused; --remove", async () => {
  await using sandbox = await vmSandbox();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = (listener.addr as Deno.NetAddr).port;
  try {
    const added = await virtdev(sandbox, ["forward", "a", "18000:8000"]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stderr, /Kept 127\.0\.0\.1:18000 → guest port 8000; it is set up when a starts/);
    assert.equal((await virtdev(sandbox, ["forward", "a", "9000"])).code, 0);
    const list = JSON.parse((await virtdev(sandbox, ["forward", "--list", "--json", "a"])).stdout);
    assert.deepEqual(list, [{ host: 9000, guest: 9000, state: "stopped" }, {
      host: 18000,
      guest: 8000,
      state: "stopped",
    }]);
    assert.deepEqual(JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout).forwards, list);
    for (const bad of ["80:80", "x", "70000", "1:2:3"]) {
      assert.equal((await virtdev(sandbox, ["forward", "a", bad])).code, 7, bad);
    }
    const again = await virtdev(sandbox, ["forward", "a", "18000:22"]);
    assert.equal(again.code, 6, again.stderr);
    const inUse = await virtdev(sandbox, ["forward", "a", `${busy}:80`]);
    assert.equal(inUse.code, 8, inUse.stderr);
    assert.match(inUse.stderr, new RegExp(`Port ${busy} is in use on this host`));
    assert.equal((await virtdev(sandbox, ["forward", "--remove", "a", "17000"])).code, 10);
    assert.equal((await virtdev(sandbox, ["forward", "--remove", "a", "18000"])).code, 0);
    assert.equal((await virtdev(sandbox, ["forward", "--remove", "a", "9000:9000"])).code, 0);
    assert.equal((await virtdev(sandbox, ["forward", "--list", "--json", "a"])).stdout, "[]\n");
    assert.equal((await virtdev(sandbox, ["forward", "a"])).code, 64);
    assert.equal((await virtdev(sandbox, ["forward", "--remove", "a"])).code, 64);
  } finally {
    listener.close();
  }
});

Deno.test("a guest that stops running is noticed within 5 s: a pause by hand is kept and shown; a kernel panic (pvpanic) ends QEMU, wait exits 12 with the reason, and the next start works", async () => {
  await using sandbox = await vmSandbox();
  const vmLog = join(sandbox.virtdevHome, "projects/a/vm.log");
  const hmp = (command: string) => virtdev(sandbox, ["monitor", "a"], { stdin: `${command}\n` });
  const within5s = async (what: string, done: () => Promise<boolean>) => {
    const started = performance.now();
    while (!await done()) {
      assert.ok(performance.now() - started < 5_000, `${what}: not within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  assert.equal((await virtdev(sandbox, ["key"])).code, 0);
  try {
    assert.equal((await virtdev(sandbox, ["start", "a"])).code, 0);
    // Paused through the monitor: QEMU lives, the state says why, wait says so, and cont clears it.
    assert.equal((await hmp("stop")).code, 0);
    await within5s(
      "paused",
      async () => (await virtdev(sandbox, ["status", "a"])).stdout.trim() === "paused (paused through the monitor)",
    );
    const json = JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout);
    assert.equal(json.state, "paused");
    assert.equal(json.halt.state, "paused");
    const waitPaused = await virtdev(sandbox, ["wait", "a"]);
    assert.equal(waitPaused.code, 12, waitPaused.stderr);
    assert.equal((await hmp("cont")).code, 0);
    await within5s("resumed", async () => !(await virtdev(sandbox, ["status", "a"])).stdout.startsWith("paused"));
    // Before its panic the guest floods its serial port (written here through the monitor, byte by byte, as the
    // guest's driver would): 300 long lines, the last behind a terminal title, a bell and a clear. What vm.log
    // keeps of it is bounded.
    const floodLine = (i: number) => `${"X".repeat(60)} ${i}\n`;
    const flood = `${Array.from({ length: 299 }, (_, i) => floodLine(i)).join("")}\x1b]0;owned\x07\x1b[2J${
      floodLine(299)
    }`;
    const portWrites = [...new TextEncoder().encode(flood)].map((byte) => `o 0x3f8 ${byte}`).join("\n");
    assert.equal((await virtdev(sandbox, ["monitor", "a"], { stdin: `${portWrites}\n` })).code, 0);
    const logBefore = (await Deno.readTextFile(vmLog)).length;
    // A kernel panic, as pvpanic reports it (the guest writes 1 to its port): QEMU is ended at once.
    const waiting = spawnVirtdev(sandbox, ["wait", "a"]);
    await waiting.stdin.close();
    const panicked = performance.now();
    assert.equal((await hmp("o 0x505 1")).code, 0);
    const waited = await waiting.output();
    const seconds = (performance.now() - panicked) / 1000;
    const stderr = new TextDecoder().decode(waited.stderr);
    assert.equal(waited.code, 12, stderr);
    assert.ok(seconds < 5, `wait took ${seconds} s`);
    assert.match(stderr, /the guest kernel panicked/);
    await within5s("stopped", async () => (await virtdev(sandbox, ["status", "a"])).stdout.startsWith("stopped"));
    assert.match((await virtdev(sandbox, ["status", "a"])).stdout, /^stopped \(the guest kernel panicked, \d{4}-/);
    assert.equal(JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout).halt.state, "guest-panicked");
    assert.match(
      await Deno.readTextFile(vmLog),
      /the guest stopped running: the guest kernel panicked \(guest-panicked\); ending QEMU/,
    );
    const kept = (await Deno.readTextFile(vmLog)).slice(logBefore).split("\n").filter((line) =>
      / console: /.test(line)
    );
    assert.ok(kept.some((line) => line.endsWith(`${"X".repeat(60)} 299`)), "the flood's last line is kept");
    assert.ok(kept.length <= 150, `${kept.length} console lines kept`);
    const keptBytes = kept.reduce((sum, line) => sum + line.replace(/^\S+ console: /, "").length, 0);
    assert.ok(keptBytes <= 16384, `${keptBytes} bytes of console kept`);
    // deno-lint-ignore no-control-regex -- no control byte may reach vm.log.
    assert.ok(!kept.some((line) => /[\x00-\x08\x0b-\x1f\x7f]/.test(line)), "no control bytes reach vm.log");
    const after = await virtdev(sandbox, ["wait", "a"]);
    assert.equal(after.code, 12, "wait after QEMU ended: the reason, until the next start");
    // deno-lint-ignore no-console -- the figure the issue asks to see, beside the test.
    console.log(`    wait ended ${seconds.toFixed(2)} s after the panic`);
    const again = await virtdev(sandbox, ["start", "a"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      await exists(join(sandbox.virtdevHome, "projects/a/halt.json")),
      false,
      "the next boot forgets the halt",
    );
    // A paused guest cannot take the power button: stop ends QEMU without waiting for it.
    assert.equal((await hmp("stop")).code, 0);
    await within5s("paused again", async () => (await virtdev(sandbox, ["status", "a"])).stdout.startsWith("paused"));
    const stopped = await virtdev(sandbox, ["stop", "a"]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /the guest is paused \(paused through the monitor\); sending SIGTERM/);
  } finally {
    await killVms(sandbox, ["a"]);
  }
});
