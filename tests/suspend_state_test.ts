import assert from "node:assert/strict";
import { join } from "node:path";
import { qemuArguments, type VmSpec } from "../src/core/vm/qemu_args.ts";
import { pathExists } from "../src/core/store/store.ts";
import {
  commitSuspendState,
  discardSuspendState,
  fingerprintDifferences,
  fingerprintOf,
  machineOf,
  networkOf,
  partialSuspendFiles,
  readSuspendRecord,
  setAsideSuspendState,
  type SuspendRecord,
} from "../src/core/vm/suspend_state.ts";

const spec: VmSpec = {
  name: "web",
  accel: "tcg",
  memoryMiB: 4096,
  cpus: 1,
  firmware: { code: "/fw/CODE.fd", nvram: "/p/web/nvram" },
  disks: { system: "/p/web/system.qcow2", home: "/p/web/home.qcow2" },
  netdev: "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
};

Deno.test("a resume's load is read from fd 3, with -S; the path is not in QEMU's arguments, nor part of the machine", () => {
  const path = "/p/web/suspended/memory";
  const args = qemuArguments({ ...spec, incoming: path });
  assert.ok(args.includes("-S"));
  assert.equal(args[args.indexOf("-incoming") + 1], "fd:3");
  assert.ok(!args.some((arg) => arg.includes(path)));
  assert.deepEqual(machineOf(args), machineOf(qemuArguments(spec)));
});

Deno.test("the machine leaves out the network backend's value; the network keeps its kind but not the port", () => {
  const on2222 = qemuArguments(spec);
  const on2300 = qemuArguments({ ...spec, netdev: "user,id=net0,hostfwd=tcp:127.0.0.1:2300-:22" });
  assert.deepEqual(machineOf(on2222), machineOf(on2300));
  assert.equal(networkOf(on2222), networkOf(on2300));
  const passt = qemuArguments({
    ...spec,
    netdev: "stream,id=net0,server=off,addr.type=unix,addr.path=/p/run/net/vm.sock",
  });
  assert.notEqual(networkOf(passt), networkOf(on2222));
  assert.notDeepEqual(machineOf(qemuArguments({ ...spec, memoryMiB: 2048 })), machineOf(on2222));
});

Deno.test("a fingerprint names every difference: a disk written, a generation, QEMU, firmware, the machine", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = {
      dir,
      systemImage: join(dir, "system.qcow2"),
      homeImage: join(dir, "home.qcow2"),
      nvram: join(dir, "nvram"),
      generation: join(dir, "generation"),
      suspended: join(dir, "suspended"),
      template: join(dir, "template"),
    };
    for (const file of [paths.systemImage, paths.homeImage, paths.nvram]) await Deno.writeTextFile(file, "x");
    await Deno.writeTextFile(paths.generation, "3\n");
    const firmwareCode = join(dir, "CODE.fd");
    await Deno.writeTextFile(firmwareCode, "fw");
    const args = qemuArguments(spec);
    const saved = await fingerprintOf(paths, { args, firmwareCode, qemuVersion: "QEMU emulator version 7.2.0" });
    assert.deepEqual(fingerprintDifferences(saved, saved), []);
    const same = await fingerprintOf(paths, { args, firmwareCode, qemuVersion: "QEMU emulator version 7.2.0" });
    assert.deepEqual(fingerprintDifferences(saved, same), []);

    await Deno.utime(paths.homeImage, new Date(), new Date(Date.now() + 5000));
    await Deno.writeTextFile(paths.generation, "4\n");
    const now = await fingerprintOf(paths, {
      args: qemuArguments({ ...spec, cpus: 2 }),
      firmwareCode,
      qemuVersion: "QEMU emulator version 9.2.0",
    });
    assert.deepEqual(fingerprintDifferences(saved, now), [
      "its home disk changed since the suspend",
      "its base generation changed",
      "QEMU changed (QEMU emulator version 7.2.0 then, QEMU emulator version 9.2.0 now)",
      "its machine changed (memory, CPUs, accelerator or devices)",
    ]);
    // A record without a fingerprint (forged, or from elsewhere) matches nothing.
    assert.ok(fingerprintDifferences({} as never, now).length >= 5);

    // Committed whole, read back, discarded.
    const partial = partialSuspendFiles(paths);
    await Deno.mkdir(partial.dir);
    await Deno.writeTextFile(partial.memory, "state");
    const record: SuspendRecord = {
      version: 1,
      token: "t",
      savedAt: new Date().toISOString(),
      port: 2222,
      readiness: "ready",
      memoryBytes: 5,
      fingerprint: saved,
    };
    assert.equal(await pathExists(paths.suspended), false);
    await commitSuspendState(paths, record);
    assert.deepEqual(await readSuspendRecord(paths), record);
    assert.equal((await Deno.stat(join(paths.suspended, "state.json"))).mode! & 0o777, 0o600);
    assert.equal(await discardSuspendState(paths), true);
    assert.equal(await pathExists(paths.suspended), false);
    assert.equal(await discardSuspendState(paths), false);

    // A resume sets the state aside (gone for every reader) and removes its files once its guest runs. What an
    // agent that died in between left aside is no obstacle to the next state's discard.
    for (const crashed of [false, true]) {
      await Deno.mkdir(partial.dir);
      await Deno.writeTextFile(partial.memory, "state");
      await commitSuspendState(paths, record);
      const consumed = await setAsideSuspendState(paths);
      assert.equal(consumed.had, true);
      assert.equal(await readSuspendRecord(paths), undefined, "set aside, the state is gone");
      assert.equal(await pathExists(`${paths.suspended}.discarded`), true, "its files wait for the removal");
      if (!crashed) {
        await consumed.remove();
        assert.equal(await pathExists(`${paths.suspended}.discarded`), false);
      }
    }
    await Deno.mkdir(partial.dir);
    await Deno.writeTextFile(partial.memory, "state");
    await commitSuspendState(paths, record);
    assert.equal(await discardSuspendState(paths), true, "discarded past what a dead agent left aside");
    assert.equal(await pathExists(paths.suspended), false);
    assert.equal(await pathExists(`${paths.suspended}.discarded`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
