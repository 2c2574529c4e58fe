/**
 * `virtdev doctor` through the real CLI: the KVM probe on this host, a PATH
 * without the tools, and `--fix` after a VM was killed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import {
  exists,
  killVms,
  kvmRunsFirmwareHere,
  makeInstallation,
  makeSandbox,
  runtimeFiles,
  smallVmEnv,
  virtdev,
} from "./_helpers.ts";

interface Check {
  readonly id: string;
  readonly status: "ok" | "warn" | "fail";
  readonly summary: string;
  readonly action?: string;
  readonly fixed?: boolean;
}

async function doctor(
  sandbox: Awaited<ReturnType<typeof makeSandbox>>,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number; checks: Check[]; stderr: string }> {
  const result = await virtdev(sandbox, ["doctor", "--json", ...args], { env });
  return { code: result.code, checks: JSON.parse(result.stdout || "[]"), stderr: result.stderr };
}

Deno.test("doctor: KVM is probed, not only looked for; the tools are there with their versions", async () => {
  await using sandbox = await makeSandbox();
  const { checks, stderr } = await doctor(sandbox, [], { VIRTDEV_ACCEL: "auto" });
  const kvm = checks.find((check) => check.id === "kvm");
  assert.ok(kvm, stderr);
  if (await kvmRunsFirmwareHere(resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined }).code)) {
    assert.equal(kvm.status, "ok", kvm.summary);
  } else {
    // These machines: /dev/kvm opens, but QEMU aborts under it or KVM stops the UEFI firmware.
    assert.equal(kvm.status, "warn", kvm.summary);
    assert.match(kvm.summary, /KVM is not usable, so TCG \(software emulation\) will be used/);
  }
  for (const tool of ["qemu-system-x86_64", "qemu-img", "ssh", "rsync", "ps", "passt"]) {
    const check = checks.find((c) => c.id === `tool:${tool}`);
    assert.equal(check?.status, "ok", `${tool}: ${check?.summary}`);
  }
  assert.match(checks.find((c) => c.id === "tool:rsync")!.summary, /version 3\./);
  assert.equal(checks.find((c) => c.id === "firmware")?.status, "ok");
  assert.equal(checks.find((c) => c.id === "key")?.status, "warn", "no key yet");
});

Deno.test("doctor: with a PATH that lacks the tools, each is named with the package to install (exit 1)", async () => {
  await using sandbox = await makeSandbox();
  const bin = join(sandbox.root, "bin");
  await Deno.mkdir(bin);
  // Only deno itself: virtdev runs, none of its tools do.
  await Deno.symlink(Deno.execPath(), join(bin, "deno"));
  const { code, checks } = await doctor(sandbox, [], { PATH: bin, VIRTDEV_ACCEL: "tcg" });
  assert.equal(code, 1);
  const text = (id: string) => {
    const check = checks.find((c) => c.id === id);
    assert.ok(check, id);
    return `${check.status} ${check.summary} ${check.action ?? ""}`;
  };
  assert.match(text("tool:qemu-system-x86_64"), /^fail .*not installed.*qemu-base.*qemu-system-x86/);
  assert.match(text("tool:qemu-img"), /^fail .*qemu-img.*qemu-utils/);
  assert.match(text("tool:ssh"), /^fail .*openssh.*openssh-client/);
  assert.match(text("tool:rsync"), /^fail .*rsync/);
  assert.match(text("tool:ps"), /^fail .*procps-ng.*procps/);
  assert.match(text("tool:passt"), /^fail .*passt.*every zone but none refuses to start/, "no silent fallback");
});

Deno.test("doctor --fix after kill -9 of a VM: the runtime files are named, then removed, and nothing else", async () => {
  const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
  await using sandbox = await makeSandbox(smallVmEnv);
  await makeInstallation(sandbox, { firmwareVars: firmware.vars });
  for (const args of [["seal"], ["key"], ["create", "a"], ["create", "b"], ["start", "a"]]) {
    const result = await virtdev(sandbox, args);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  }
  try {
    await killVms(sandbox, ["a"]);
    const pidFile = join(sandbox.virtdevHome, "projects/a/run/qemu.pid");
    assert.ok(await exists(pidFile), "the crash left its pidfile");
    const found = await doctor(sandbox);
    assert.equal(found.code, 1);
    const leftover = found.checks.find((c) => c.id === "leftover:runtime:a");
    assert.equal(leftover?.status, "fail");
    assert.match(leftover.action ?? "", /doctor --fix/);
    assert.ok(await exists(pidFile), "doctor without --fix changes nothing");

    const fixed = await doctor(sandbox, ["--fix"]);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.checks));
    assert.equal(fixed.checks.find((c) => c.id === "leftover:runtime:a")?.fixed, true);
    for (const file of runtimeFiles(sandbox, "a")) assert.equal(await exists(file), false, file);
    for (const file of ["system.qcow2", "home.qcow2", "nvram", "generation"]) {
      assert.ok(await exists(join(sandbox.virtdevHome, "projects/a", file)), `${file} is kept`);
    }
    assert.ok(await exists(join(sandbox.virtdevHome, "projects/b/system.qcow2")));
    const again = await doctor(sandbox);
    assert.equal(again.checks.find((c) => c.id === "leftovers")?.status, "ok");
  } finally {
    await killVms(sandbox, ["a"]);
  }
});
