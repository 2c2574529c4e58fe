/**
 * A store as the original bash virtdev leaves it (behaviour §2): projects
 * under names it allowed and this tool refuses, and a VM it started,
 * here a QEMU started by hand on a project's disks with the original's
 * HMP socket in the project directory. Nothing may vanish, and the disks
 * are never booted twice.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { qemuProcessesUsing } from "../src/core/vm/disk_locks.ts";
import { exists, makeSandbox, type Sandbox, sh, smallVmEnv, virtdev } from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
const longName = "l".repeat(70);
const names = ["web", "-dash", "base", longName];

/** The original's layout: system/ at generation 1 (0444), and each project's two deltas, nvram and generation. */
async function originalStore(sandbox: Sandbox): Promise<void> {
  const home = sandbox.virtdevHome;
  const system = join(home, "system");
  await Deno.mkdir(join(home, "ssh"), { recursive: true, mode: 0o700 });
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(home, "ssh/id")]);
  await Deno.writeTextFile(join(home, "lock"), "");
  await Deno.mkdir(system, { recursive: true });
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(system, "system.qcow2"), "64M"]);
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(system, "home.qcow2"), "64M"]);
  await Deno.copyFile(firmware.vars, join(system, "nvram"));
  await Deno.writeTextFile(join(system, "generation"), "1\n");
  for (const file of ["system.qcow2", "home.qcow2", "nvram", "generation"]) await Deno.chmod(join(system, file), 0o444);
  for (const name of names) {
    const dir = join(home, "projects", name);
    await Deno.mkdir(dir, { recursive: true });
    for (const disk of ["system.qcow2", "home.qcow2"]) {
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", "-b", join(system, disk), "-F", "qcow2", join(dir, disk)]);
    }
    await Deno.copyFile(join(system, "nvram"), join(dir, "nvram"));
    await Deno.writeTextFile(join(dir, "generation"), name === "-dash" ? "0\n" : "1\n");
  }
}

/** QEMU as the original's systemd unit runs it (§5.1), by hand: its disks, its HMP socket, its port file. */
function startLikeTheOriginal(sandbox: Sandbox, name: string): Deno.ChildProcess {
  const dir = join(sandbox.virtdevHome, "projects", name);
  Deno.writeTextFileSync(join(dir, "port"), "2222\n");
  return new Deno.Command("qemu-system-x86_64", {
    args: [
      ...["-accel", "tcg", "-machine", "q35", "-m", "256", "-smp", "1", "-display", "none"],
      ...["-drive", `if=pflash,format=raw,readonly=on,file=${firmware.code}`],
      ...["-drive", `if=pflash,format=raw,file=${dir}/nvram`],
      ...["-drive", `file=${dir}/system.qcow2,if=virtio,format=qcow2`],
      ...["-drive", `file=${dir}/home.qcow2,if=virtio,format=qcow2`],
      ...["-chardev", `socket,id=monitor,path=${dir}/monitor.sock,server=on,wait=off`, "-monitor", "chardev:monitor"],
      ...["-chardev", `socket,id=serial,path=${dir}/console.sock,server=on,wait=off`, "-serial", "chardev:serial"],
      ...["-fw_cfg", `name=opt/virtdev/project,string=${name}`],
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test("a store of the original tool: legacy names are listed and destroyable, and its VM is never booted twice", async () => {
  await using sandbox = await makeSandbox(smallVmEnv);
  await originalStore(sandbox);
  const run = (args: string[]) => virtdev(sandbox, args);
  const disks = ["system.qcow2", "home.qcow2"].map((disk) => join(sandbox.virtdevHome, "projects/web", disk));
  const qemu = startLikeTheOriginal(sandbox, "web");
  try {
    // QEMU has opened (and locked) the disks once its monitor socket exists.
    for (let i = 0; i < 100 && !await exists(join(sandbox.virtdevHome, "projects/web/monitor.sock")); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));

    const list = await run(["list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as {
      name: string;
      status: string;
      startedElsewhere: boolean;
      legacyName: boolean;
    }[];
    assert.deepEqual(rows.map((row) => row.name), ["-dash", "base", longName, "web"], "no project vanishes");
    const web = rows.find((row) => row.name === "web")!;
    assert.deepEqual([web.status, web.startedElsewhere, web.legacyName], ["running", true, false]);
    for (const name of ["-dash", "base", longName]) {
      const row = rows.find((r) => r.name === name)!;
      assert.deepEqual([row.legacyName, row.status], [true, "stopped"], name);
    }
    assert.match(list.stderr, /warning: -dash, base, l{70}: names the original virtdev allowed/);
    assert.match(list.stderr, /warning: web: running in a QEMU virtdev did not start/);
    const table = await run(["list"]);
    assert.match(table.stdout, /^web +- +running \(started elsewhere\) +1$/m);

    assert.equal((await run(["status", "web"])).stdout, "running (started elsewhere)\n");
    const doctor = JSON.parse((await run(["doctor", "--json"])).stdout) as { id: string; status: string }[];
    assert.equal(doctor.find((check) => check.id === "foreign:web")?.status, "warn");
    assert.equal(doctor.find((check) => check.id === "legacy-names")?.status, "warn");
    assert.equal((await run(["stale"])).stdout, "-dash\n", "legacy projects are in stale too");
    assert.equal((await run(["status", "--", "-dash"])).stdout, "stopped\n");

    // Never a second QEMU on the same disks.
    const again = await run(["start", "web"]);
    assert.equal(again.code, 6, again.stderr);
    assert.match(again.stderr, /already running, started elsewhere/);
    assert.deepEqual(await qemuProcessesUsing(disks), [qemu.pid], "only the original's QEMU has the disks");
    assert.equal(await exists(join(sandbox.virtdevHome, "projects/web/run/qemu.pid")), false);

    // Legacy names: not started, but stopped, inspected and destroyed.
    const legacyStart = await run(["start", "--", "-dash"]);
    assert.equal(legacyStart.code, 2, legacyStart.stderr);
    assert.match(legacyStart.stderr, /virtdev move -- -dash NEW-NAME/);

    // The firmware ignores the power button: ACPI, then SIGTERM to the QEMU that names the disks.
    const stop = await run(["stop", "web"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, new RegExp(`SIGTERM to QEMU \\(PID ${qemu.pid}\\)`));
    assert.notEqual((await qemu.status).code, null);
    assert.equal((await run(["status", "web"])).stdout, "stopped\n");

    for (const name of ["-dash", "base", longName]) {
      const destroyed = await run(["destroy", "-y", "--", name]);
      assert.equal(destroyed.code, 0, `${name}: ${destroyed.stderr}`);
      assert.equal(await exists(join(sandbox.virtdevHome, "projects", name)), false, name);
    }
    assert.deepEqual(JSON.parse((await run(["list", "--json"])).stdout).map((row: { name: string }) => row.name), [
      "web",
    ]);
    // Now virtdev starts web itself, once.
    const started = await run(["start", "web"]);
    assert.equal(started.code, 0, started.stderr);
    assert.equal((await run(["stop", "web"])).code, 0);
  } finally {
    try {
      qemu.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await qemu.status;
    const pid = await Deno.readTextFile(join(sandbox.virtdevHome, "projects/web/run/qemu.pid")).catch(() => "");
    if (pid.trim()) await sh("kill", ["-9", pid.trim()]).catch(() => {});
  }
});
