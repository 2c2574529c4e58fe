/**
 * The real guest for end-to-end tests: one sandbox per test process in
 * which the test image is installed and sealed once; tests then make their
 * own projects in it. Runs only when VIRTDEV_E2E=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSandbox, repoRoot, type Sandbox, virtdev } from "./_helpers.ts";

/** Whether end-to-end tests run (they need root and several minutes). */
export const e2eEnabled: boolean = Deno.env.get("VIRTDEV_E2E") === "1";

async function _buildGuest(): Promise<string> {
  const output = await new Deno.Command("bash", {
    args: [join(repoRoot, "scripts/build_test_guest.sh")],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0, "the test guest builds");
  return new TextDecoder().decode(output.stdout).trim().split("\n").pop()!;
}

let _shared: Promise<{ sandbox: Sandbox; install: string }> | undefined;

/**
 * The sandbox with a sealed base installed from the test image, made on
 * first use (`install`'s stderr is kept for checks) and removed when the
 * test process ends.
 */
export function sealedGuestSandbox(): Promise<{ sandbox: Sandbox; install: string }> {
  _shared ??= (async () => {
    const image = await _buildGuest();
    const sandbox = await makeSandbox({
      VIRTDEV_ACCEL: "tcg",
      VIRTDEV_SUPERVISOR: "process",
      VIRTDEV_VM_CPUS: "2",
      VIRTDEV_VM_MEMORY: "1024",
      VIRTDEV_SYSTEM_DISK_SIZE: "4G",
      VIRTDEV_HOME_DISK_SIZE: "2G",
      VIRTDEV_WAIT_TIMEOUT: "400",
      VIRTDEV_STOP_TIMEOUT: "60",
      VIRTDEV_INSTALL_TIMEOUT: "1200",
    });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(sandbox.root, { recursive: true });
      } catch {
        // Already gone.
      }
    });
    const key = await virtdev(sandbox, ["key"]);
    assert.equal(key.code, 0, key.stderr);
    const install = await virtdev(sandbox, ["install", "--image", image]);
    assert.equal(install.code, 0, install.stderr);
    const seal = await virtdev(sandbox, ["seal"]);
    assert.equal(seal.code, 0, seal.stderr);
    // CI passes the bench this base, so that a run installs it once.
    const share = Deno.env.get("VIRTDEV_TEST_SEALED_BASE");
    if (share) await copyBase(sandbox.virtdevHome, share);
    return { sandbox, install: install.stderr };
  })();
  return _shared;
}

/** Copies a sealed base and its key (`system/`, `ssh/`) from one VIRTDEV_HOME to another, reflinked where possible. */
export async function copyBase(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o700 });
  for (const dir of ["system", "ssh"]) {
    const output = await new Deno.Command("cp", {
      args: ["-a", "--reflink=auto", join(from, dir), join(to, dir)],
    }).output();
    assert.equal(output.code, 0, `copying ${dir}`);
  }
}

/**
 * A sandbox of its own with a copy of the shared sealed base and SSH key,
 * for tests that change the base (maintain, upgrade): the base is installed
 * once per test run and copied (a reflink where the file system allows).
 */
export async function copiedGuestSandbox(): Promise<Sandbox> {
  const { sandbox: shared } = await sealedGuestSandbox();
  // The shared env names the shared HOME: this sandbox gets its own.
  const { HOME: _sharedHome, ...env } = shared.env;
  const sandbox = await makeSandbox(env);
  await copyBase(shared.virtdevHome, sandbox.virtdevHome);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(sandbox.root, { recursive: true });
    } catch {
      // Already gone.
    }
  });
  return sandbox;
}
