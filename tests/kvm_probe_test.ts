/**
 * The KVM probe: its verdict for each way QEMU can fare under KVM (it
 * exits with a message, it keeps running in `internal-error`, it keeps
 * running in `running`), its QMP logic against a real QEMU started stopped
 * (`-S`), its cache key, and its answer on this host against an oracle that
 * does not use it (OVMF's serial console).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FirmwareRun, kvmVerdict, probeKvm } from "../src/core/vm/kvm_probe.ts";
import { resolveFirmware } from "../src/core/store/config.ts";
import { kvmRunsFirmwareHere } from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
const qemu = "qemu-system-x86_64";

Deno.test("kvm probe: QEMU that exits with a message is unusable, with QEMU's words", () => {
  const verdict = kvmVerdict({
    kind: "exited",
    code: 1,
    stderr:
      "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0\nqemu: ../target/i386/kvm/kvm.c:3093: kvm_buf_set_msrs: Assertion failed.\n",
  });
  assert.equal(verdict.usable, false);
  assert.match(verdict.reason!, /kvm_buf_set_msrs: Assertion failed/);
});

Deno.test("kvm probe: QEMU that keeps running in internal-error is unusable, and says so", () => {
  const verdict = kvmVerdict({
    kind: "alive",
    status: "internal-error",
    progressed: true,
    stderr: "KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000001\nemulation failure\n",
  });
  assert.equal(verdict.usable, false);
  assert.match(verdict.reason!, /run state 'internal-error'/);
  assert.match(verdict.reason!, /KVM internal error\. Suberror: 1, emulation failure/);
});

Deno.test("kvm probe: QEMU that keeps running in running is usable only once the firmware left its reset vector", () => {
  assert.deepEqual(kvmVerdict({ kind: "alive", status: "running", progressed: true, stderr: "" }), { usable: true });
  const stuck = kvmVerdict({ kind: "alive", status: "running", progressed: false, stderr: "" });
  assert.equal(stuck.usable, false);
  assert.match(stuck.reason!, /no progress/);
});

Deno.test("kvm probe: a real QEMU started with -S is not running until 'cont', then runs the firmware", async () => {
  const run = await FirmwareRun.start(qemu, { accel: "tcg", firmwareCode: firmware.code, extraArgs: ["-S"] });
  try {
    const before = await run.observe(300);
    assert.deepEqual({ ...before, stderr: "" }, { kind: "alive", status: "prelaunch", progressed: false, stderr: "" });
    assert.equal(kvmVerdict(before).usable, false);
    assert.match(kvmVerdict(before).reason!, /run state 'prelaunch'/);
    await run.execute("cont");
    let after = await run.observe(0);
    for (let i = 0; i < 50 && !(after.kind === "alive" && after.progressed); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await run.observe(0);
    }
    assert.deepEqual({ ...after, stderr: "" }, { kind: "alive", status: "running", progressed: true, stderr: "" });
    assert.deepEqual(kvmVerdict(after), { usable: true });
  } finally {
    await run.close();
  }
});

Deno.test("kvm probe: a real QEMU that exits at once is seen as exited, with its message", async () => {
  const run = await FirmwareRun.start(qemu, { accel: "tcg", firmwareCode: "/nonexistent/OVMF_CODE.fd" });
  try {
    const observation = await run.observe(300);
    assert.equal(observation.kind, "exited");
    const verdict = kvmVerdict(observation);
    assert.equal(verdict.usable, false);
    assert.match(verdict.reason!, /nonexistent\/OVMF_CODE\.fd/);
  } finally {
    await run.close();
  }
});

Deno.test("kvm probe: on this host it agrees with OVMF's serial console, and caches per firmware", async () => {
  const cache = await Deno.makeTempDir({ prefix: "virtdev-kvm-probe-" });
  try {
    const fresh = await probeKvm(cache, { firmwareCode: firmware.code, fresh: true });
    assert.equal(fresh.cached, false);
    assert.equal(fresh.usable, await kvmRunsFirmwareHere(firmware.code), fresh.reason);
    if (!fresh.usable) assert.match(fresh.reason!, /\.$/, "the reason is a sentence");
    const again = await probeKvm(cache, { firmwareCode: firmware.code });
    assert.deepEqual(again, { ...fresh, cached: true });
    // Another firmware file is another question.
    const copy = join(cache, "OVMF_CODE.fd");
    await Deno.copyFile(firmware.code, copy);
    assert.equal((await probeKvm(cache, { firmwareCode: copy })).cached, false);
    assert.equal((await probeKvm(cache, { firmwareCode: copy })).cached, true);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});
