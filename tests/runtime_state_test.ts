import assert from "node:assert/strict";
import { join } from "node:path";
import { inspectVm, isOurQemu, isProcessOurQemu } from "../src/core/vm/runtime_state.ts";
import { Store } from "../src/core/store/store.ts";
import { systemdRunArguments } from "../src/core/vm/supervisor.ts";

Deno.test("only our QEMU's command line matches its pidfile", () => {
  const pid = "/v/projects/a/qemu.pid";
  assert.equal(isOurQemu(`/usr/bin/qemu-system-x86_64 -name a -daemonize -pidfile ${pid}`, pid), true);
  assert.equal(isOurQemu(`qemu-system-x86_64 -pidfile ${pid} -name a`, pid), true);
  assert.equal(isOurQemu(`/usr/bin/qemu-system-x86_64 -pidfile ${pid}x`, pid), false);
  assert.equal(isOurQemu(`/usr/bin/qemu-system-x86_64 -pidfile /v/projects/b/qemu.pid`, pid), false);
  assert.equal(isOurQemu(`/usr/bin/vim -pidfile ${pid}`, pid), false, "a reused PID running something else");
  assert.equal(isOurQemu(`/bin/sh -c qemu-system-x86_64 -pidfile ${pid}`, pid), false);
});

Deno.test("a pidfile naming a live process that is not our QEMU counts as stopped, with stale files", async () => {
  const root = await Deno.makeTempDir();
  try {
    const paths = new Store(root).project("a");
    await Deno.mkdir(paths.runDir, { recursive: true });
    // A live PID that is not QEMU: this very test runner.
    await Deno.writeTextFile(paths.runtime.pidFile, `${Deno.pid}\n`);
    assert.equal(await isProcessOurQemu(Deno.pid, paths.runtime.pidFile), false);
    assert.deepEqual(await inspectVm(paths), { state: "stopped", stale: true });
    await Deno.remove(paths.runtime.pidFile);
    assert.deepEqual(await inspectVm(paths), { state: "stopped", stale: false });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a real QEMU with our pidfile is found, and is gone after it exits", async () => {
  const root = await Deno.makeTempDir();
  try {
    const pidFile = join(root, "qemu.pid");
    const qemu = new Deno.Command("qemu-system-x86_64", {
      args: ["-machine", "none", "-display", "none", "-nodefaults", "-daemonize", "-pidfile", pidFile],
    });
    assert.equal((await qemu.output()).code, 0);
    const pid = Number((await Deno.readTextFile(pidFile)).trim());
    assert.equal(await isProcessOurQemu(pid, pidFile), true);
    assert.equal(await isProcessOurQemu(pid, join(root, "other.pid")), false);
    Deno.kill(pid, "SIGTERM");
    for (let i = 0; i < 200 && await isProcessOurQemu(pid, pidFile); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await isProcessOurQemu(pid, pidFile), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("systemd-run runs the host agent as a transient user unit without --collect", () => {
  const args = systemdRunArguments("virtdev-a", "a", { program: "/usr/bin/virtdev", args: ["__host-agent", "/p/a"] });
  assert.deepEqual(args.slice(0, 2), ["--user", "--unit=virtdev-a"]);
  assert.ok(args.includes("--description=virtdev project virtual machine: a"));
  assert.ok(!args.includes("--collect"));
  assert.deepEqual(args.slice(args.indexOf("--")), ["--", "/usr/bin/virtdev", "__host-agent", "/p/a"]);
});
