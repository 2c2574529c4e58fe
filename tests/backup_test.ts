import assert from "node:assert/strict";
import { join } from "node:path";
import { VirtdevError } from "../src/core/store/errors.ts";
import { parseManifest } from "../src/core/state/manifest.ts";
import {
  describePlan,
  type RecreatePlan,
  type RecreateRequest,
  recreateSteps,
  resumeCommand,
  stepExitCode,
} from "../src/core/state/recreate.ts";
import { findEntryThroughSymlink } from "../src/core/state/restore.ts";
import { snapshotIdAt, snapshotTime, validateSnapshotId } from "../src/core/state/snapshots.ts";
import { makeInstallation, makeSandbox, thrownExitCode, virtdev } from "./_helpers.ts";

Deno.test("manifest: comments and blank lines are skipped, trailing slashes dropped", () => {
  assert.deepEqual(parseManifest("# keep\nsrc\n\n.config/app/\n./notes\r\n", "m"), ["src", ".config/app", "./notes"]);
});

Deno.test("manifest: absolute (15), '..', control characters and edge whitespace (16), nothing (9); every bad line named", () => {
  assert.equal(thrownExitCode(() => parseManifest("/etc\n", "m")), 15);
  for (const bad of ["../x", "a/../../b", "a/..", "tab\there", "bell\x07", " lead", "trail ", "del\x7f"]) {
    assert.equal(thrownExitCode(() => parseManifest(`ok\n${bad}\n`, "m")), 16, JSON.stringify(bad));
  }
  assert.equal(thrownExitCode(() => parseManifest("# nothing\n\n", "m")), 9);
  assert.equal(thrownExitCode(() => parseManifest("", "m")), 9);
  try {
    parseManifest("ok\n/abs\nx/../y\n", "/cfg/manifest");
    assert.fail("refused");
  } catch (error) {
    assert.ok(error instanceof VirtdevError);
    assert.equal(error.exitCode, 16, "a mix of absolute and malformed is malformed");
    assert.match(error.message, /\/cfg\/manifest has 2 bad lines/);
    assert.match(error.message, /line 2: "\/abs" is absolute/);
    assert.match(error.message, /line 3: "x\/\.\.\/y" has a '\.\.' component/);
  }
});

Deno.test("snapshot ids: UTC YYYY-MM-DD/HH-MM-SS, round-trip to a time, bad ones exit 79", () => {
  const at = new Date("2026-11-22T14:03:59.987Z");
  assert.equal(snapshotIdAt(at), "2026-11-22/14-03-59");
  assert.equal(snapshotTime("2026-11-22/14-03-59").toISOString(), "2026-11-22T14:03:59.000Z");
  for (const bad of ["2026-11-22", "2026-11-22/14-03", "26-11-22/14-03-59", "2026-11-22/14-03-59/..", "../x"]) {
    assert.equal(thrownExitCode(() => validateSnapshotId(bad)), 79, bad);
  }
});

Deno.test("restore refuses manifest paths that pass through a symlink in the snapshot", async () => {
  const tree = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(tree, "work/real"), { recursive: true });
    await Deno.symlink("/etc", join(tree, "work/out"));
    assert.equal(await findEntryThroughSymlink(tree, ["work", "work/real", "work/out"]), undefined);
    assert.equal(await findEntryThroughSymlink(tree, ["work", "work/out/passwd"]), "work/out/passwd");
    assert.equal(await findEntryThroughSymlink(tree, ["missing/x/y"]), undefined);
  } finally {
    await Deno.remove(tree, { recursive: true });
  }
});

const request: RecreateRequest = {
  project: "web",
  noBackup: false,
  noRestore: false,
  noProvision: false,
  provision: "/home/u/my provision.sh",
  verbose: false,
};

Deno.test("recreate: steps exit 20-27, the plan names skipped steps, resume commands carry the snapshot", () => {
  assert.deepEqual(recreateSteps.map(stepExitCode), [20, 21, 22, 23, 24, 25, 26, 27]);
  const plan: RecreatePlan = {
    request,
    provisionPath: request.provision,
    steps: recreateSteps.map((step) =>
      step === "stop"
        ? { step, skipped: "VM already stopped" }
        : step === "provision"
        ? { step, detail: request.provision }
        : { step }
    ),
  };
  const lines = describePlan(plan);
  assert.equal(lines[0], "Plan for recreate of web:");
  assert.match(lines[2], /^ {2}-- stop +\(skipped: VM already stopped\)$/);
  assert.match(lines[7], /^ {2}7\. provision +\/home\/u\/my provision\.sh$/);
  assert.equal(
    resumeCommand(plan, "provision", "2026-11-22/14-03-59"),
    "virtdev recreate --from provision --snapshot 2026-11-22/14-03-59 --provision '/home/u/my provision.sh' -y web",
  );
  assert.equal(
    resumeCommand({ ...plan, request: { ...request, noRestore: true, noProvision: true } }, "start", "x"),
    "virtdev recreate --from start --no-restore --no-provision -y web",
  );
});

Deno.test("backup, restore and recreate refuse a stopped VM, bad ids and missing scripts before doing anything", async () => {
  await using sandbox = await makeSandbox();
  await makeInstallation(sandbox);
  for (const args of [["seal"], ["create", "web"]]) assert.equal((await virtdev(sandbox, args)).code, 0);
  assert.equal((await virtdev(sandbox, ["backup", "web"])).code, 4);
  const list = await virtdev(sandbox, ["backup", "--list", "web"]);
  assert.equal(list.code, 0);
  assert.match(list.stderr, /No snapshots/);
  assert.equal((await virtdev(sandbox, ["backup", "--list", "--json", "web"])).stdout, "[]\n");
  assert.equal((await virtdev(sandbox, ["backup", "--latest", "web"])).stdout, "");
  assert.equal((await virtdev(sandbox, ["backup", "nope"])).code, 3);
  assert.equal((await virtdev(sandbox, ["restore", "web", "yesterday"])).code, 79);
  assert.equal((await virtdev(sandbox, ["restore", "web"])).code, 4);
  const recreate = await virtdev(sandbox, ["recreate", "-y", "web"]);
  assert.equal(recreate.code, 4, recreate.stderr);
  assert.match(recreate.stderr, /--no-backup/);
  const missing = join(sandbox.home, "no-such-script");
  const script = await virtdev(sandbox, ["recreate", "-y", "--no-backup", "--provision", missing, "web"]);
  assert.equal(script.code, 6);
  const aborted = await virtdev(sandbox, ["recreate", "--no-backup", "web"], { stdin: "wrong\n" });
  assert.equal(aborted.code, 7);
  assert.match(aborted.stderr, /Plan for recreate of web:/);
  assert.match(aborted.stderr, /-- backup +\(skipped: --no-backup\)/);
  assert.match(aborted.stderr, /-- restore +\(skipped: no prior snapshots\)/);
  assert.equal((await virtdev(sandbox, ["status", "web"])).stdout.trim(), "stopped");
});
