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
  spawnVirtdev,
  taskArguments,
  virtdev,
} from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });

async function vmSandbox(env: Record<string, string> = {}): Promise<Sandbox> {
  const sandbox = await makeSandbox({
    VIRTDEV_ACCEL: "tcg",
    VIRTDEV_SUPERVISOR: "process",
    VIRTDEV_VM_MEMORY: "256",
    VIRTDEV_VM_CPUS: "1",
    VIRTDEV_STOP_TIMEOUT: "2",
    ...env,
  });
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

Deno.test("two starts at once get different ports (or one exits 75), never a crash", async () => {
  await using sandbox = await vmSandbox();
  try {
    const results = await Promise.all(["a", "b"].map((name) => spawnVirtdev(sandbox, ["start", name]).output()));
    for (const result of results) assert.ok([0, 75].includes(result.code), new TextDecoder().decode(result.stderr));
    const ports = new Set<string>();
    for (const [i, name] of ["a", "b"].entries()) {
      if (results[i].code !== 0) continue;
      ports.add((await virtdev(sandbox, ["port", name])).stdout.trim());
    }
    assert.equal(ports.size, results.filter((result) => result.code === 0).length);
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
    VIRTDEV_INSTALL_TIMEOUT: "8",
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
  assert.match(install.stderr, /did not power off within 8s/);
  assert.match(install.stderr, /Last \d+ console lines:\n {2}\| /);
  assert.match(install.stderr, /Booting the install VM.*: failed/);
  const left = [];
  for await (const entry of Deno.readDir(sandbox.virtdevHome)) left.push(entry.name);
  assert.deepEqual(left.sort(), ["lock", "ssh"], "no installation/ and no hidden work directory");
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
