/**
 * The systemd supervisor against a real systemd user manager. These tests
 * run inside `scripts/systemd_user_container.sh` (a systemd-nspawn
 * container: PID 1 on the CI machines is not systemd), which CI does; the
 * file has no `_test` suffix so that `deno test tests/` leaves it out.
 *
 *   scripts/systemd_user_container.sh --copy-in BASE:/sealed -- deno test -A tests/systemd_container.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { copyBase } from "./_guest.ts";
import { exists, makeInstallation, makeSandbox, type Sandbox, sh, spawnVirtdev, virtdev } from "./_helpers.ts";

const userEnv = {
  USER: Deno.env.get("USER") ?? "",
  XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "",
  DBUS_SESSION_BUS_ADDRESS: Deno.env.get("DBUS_SESSION_BUS_ADDRESS") ?? "",
};

async function systemctl(...args: string[]): Promise<string> {
  const output = await new Deno.Command("systemctl", { args: ["--user", ...args], stdout: "piped" }).output();
  return new TextDecoder().decode(output.stdout).trim();
}

async function ok(sandbox: Sandbox, ...args: string[]) {
  const result = await virtdev(sandbox, args);
  assert.equal(result.code, 0, `virtdev ${args.join(" ")}: ${result.stderr}`);
  return result;
}

async function killUnits(names: readonly string[]): Promise<void> {
  for (const name of names) {
    await new Deno.Command("systemctl", { args: ["--user", "kill", "--signal=SIGKILL", `virtdev-${name}`] }).output();
    await new Deno.Command("systemctl", { args: ["--user", "reset-failed", `virtdev-${name}`] }).output();
  }
}

Deno.test("systemd supervisor, real user manager: a transient unit, status and list from it, log and log -f through journalctl, stop, kill -9, linger", async () => {
  assert.ok(userEnv.XDG_RUNTIME_DIR, "runs under a user manager (scripts/systemd_user_container.sh)");
  const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
  await using sandbox = await makeSandbox({
    ...userEnv,
    VIRTDEV_ACCEL: "tcg",
    VIRTDEV_SUPERVISOR: "auto",
    VIRTDEV_VM_MEMORY: "256",
    VIRTDEV_VM_CPUS: "1",
    VIRTDEV_STOP_TIMEOUT: "2",
  });
  await makeInstallation(sandbox, { firmwareVars: firmware.vars });
  for (const args of [["seal"], ["key"], ["create", "a"], ["create", "b"]]) await ok(sandbox, ...args);
  try {
    // auto picks systemd where a user manager answers; tester lingers, so no warning.
    const started = await ok(sandbox, "start", "a");
    assert.match(started.stderr, /systemd supervisor/);
    assert.doesNotMatch(started.stderr, /lingering/);
    assert.equal(await systemctl("is-active", "virtdev-a"), "active");
    const status = JSON.parse((await ok(sandbox, "status", "--json", "a")).stdout);
    assert.equal(status.supervisor, "systemd");
    assert.equal(status.state, "starting", "firmware only: the guest never says it is ready");
    // The unit's main process is the host agent; QEMU is in the unit's cgroup.
    const mainPid = Number(await systemctl("show", "virtdev-a", "--property=MainPID", "--value"));
    assert.ok(mainPid > 0);
    const cgroupPids = await systemctl("show", "virtdev-a", "--property=ControlGroup", "--value");
    assert.match(cgroupPids, /virtdev-a\.service$/);
    const list = JSON.parse((await ok(sandbox, "list", "--json")).stdout) as { name: string; status: string }[];
    assert.deepEqual(list.map((p) => [p.name, p.status]), [["a", "starting"], ["b", "stopped"]]);

    // log is journalctl --user -u virtdev-a: systemd's lines and the agent's.
    const log = await ok(sandbox, "log", "a");
    assert.match(log.stdout, /Started virtdev-a\.service|Started virtdev project virtual machine: a/);
    assert.match(log.stdout, /passt started|QEMU|host agent/);
    const follower = spawnVirtdev(sandbox, ["log", "-f", "a"]);
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let followed = "";
    const stopping = ok(sandbox, "stop", "a");
    while (!/QEMU exited|Stopped virtdev/.test(followed)) {
      const { value, done } = await reader.read();
      if (done) break;
      followed += value;
    }
    await stopping;
    follower.kill("SIGTERM");
    await reader.cancel();
    await follower.status;
    await follower.stderr.cancel();
    assert.match(followed, /QEMU exited|Stopped virtdev/, "log -f printed the stop as it happened");
    assert.notEqual(await systemctl("is-active", "virtdev-a"), "active");
    assert.equal((await ok(sandbox, "status", "a")).stdout, "stopped\n");
    assert.equal(await exists(join(sandbox.virtdevHome, "projects/a/run")), false, "no runtime files are left");

    // kill -9 of QEMU: seen as stopped at once; the failed unit does not stop the next start.
    await ok(sandbox, "start", "a");
    const qemuPid = (await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/run/qemu.pid"))).trim();
    await sh("kill", ["-9", qemuPid]);
    assert.equal((await ok(sandbox, "status", "a")).stdout, "stopped\n");
    for (let i = 0; i < 50 && await systemctl("is-active", "virtdev-a") === "active"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.notEqual(await systemctl("is-active", "virtdev-a"), "active", "the unit ended with its QEMU");
    await ok(sandbox, "start", "a");
    assert.equal(await systemctl("is-active", "virtdev-a"), "active");
    await ok(sandbox, "stop", "a");

    // A user who does not linger is told that the VM ends at logout.
    const unlingered = await virtdev(sandbox, ["start", "b"], { env: { USER: "nolinger" } });
    assert.equal(unlingered.code, 0, unlingered.stderr);
    assert.match(unlingered.stderr, /lingering is not enabled for nolinger: the VM stops when you log out/);
    await ok(sandbox, "stop", "b");
  } finally {
    await killUnits(["a", "b"]);
  }
});

Deno.test("systemd supervisor, real user manager: the real guest boots as a transient unit; wait, ssh and stop", async () => {
  const sealed = "/sealed";
  assert.ok(
    await exists(join(sealed, "system/generation")),
    "the sealed base of the end-to-end tests is bound at /sealed",
  );
  await using sandbox = await makeSandbox({
    ...userEnv,
    VIRTDEV_ACCEL: "tcg",
    VIRTDEV_SUPERVISOR: "systemd",
    VIRTDEV_VM_CPUS: "2",
    VIRTDEV_VM_MEMORY: "1024",
    VIRTDEV_WAIT_TIMEOUT: "600",
  });
  await copyBase(sealed, sandbox.virtdevHome);
  await ok(sandbox, "create", "unit");
  try {
    await ok(sandbox, "start", "unit");
    assert.equal(await systemctl("is-active", "virtdev-unit"), "active");
    await ok(sandbox, "wait", "unit");
    assert.equal((await ok(sandbox, "ssh", "unit", "hostname")).stdout.trim(), "unit");
    assert.equal((await ok(sandbox, "status", "unit")).stdout, "running\n");
    const stopped = await ok(sandbox, "stop", "unit");
    assert.match(stopped.stderr, /powered off/, "the guest powered off on ACPI");
    assert.notEqual(await systemctl("is-active", "virtdev-unit"), "active");
  } finally {
    await killUnits(["unit"]);
  }
});
