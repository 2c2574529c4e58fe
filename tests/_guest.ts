/**
 * The real guest for end-to-end tests. The test image is installed and
 * sealed once per test run, not once per test file (`deno test` runs each
 * file in an isolate of its own): into `VIRTDEV_TEST_SEALED_BASE` when CI
 * names one, otherwise into a cache beside the test image's, keyed by the
 * image and by the code that installs it, so that a second local run
 * installs nothing. Each test file then gets a sandbox of its own with a
 * copy of that base. Runs only when VIRTDEV_E2E=1.
 *
 * Run as a script (`deno run -A tests/_guest.ts`) it makes sure the base
 * exists and prints its directory.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { makeSandbox, repoRoot, type Sandbox, virtdev } from "./_helpers.ts";

/** Whether end-to-end tests run (they need root and several minutes). */
export const e2eEnabled: boolean = Deno.env.get("VIRTDEV_E2E") === "1";

/** The environment of end-to-end sandboxes. */
export const guestEnv: Readonly<Record<string, string>> = {
  VIRTDEV_ACCEL: "tcg",
  VIRTDEV_SUPERVISOR: "process",
  VIRTDEV_VM_CPUS: Deno.env.get("VIRTDEV_TEST_VM_CPUS") ?? "2",
  VIRTDEV_VM_MEMORY: "1024",
  VIRTDEV_SYSTEM_DISK_SIZE: "4G",
  VIRTDEV_HOME_DISK_SIZE: "2G",
  VIRTDEV_WAIT_TIMEOUT: "400",
  VIRTDEV_STOP_TIMEOUT: "60",
  VIRTDEV_INSTALL_TIMEOUT: "1200",
};

/** What the base's install printed, kept beside the base so that its checks run once per run. */
const _installLog = "install.log";

async function _buildGuest(): Promise<string> {
  const output = await new Deno.Command("bash", {
    args: [join(repoRoot, "scripts/build_test_guest.sh")],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0, "the test guest builds");
  return new TextDecoder().decode(output.stdout).trim().split("\n").pop()!;
}

/** A hash of the code that decides what an installed base holds: a change there installs anew. */
async function _installCodeHash(): Promise<string> {
  const files: string[] = [];
  for (const dir of ["src/core/base", "src/core/guest"]) {
    for await (const entry of Deno.readDir(join(repoRoot, dir))) {
      if (entry.isFile && entry.name.endsWith(".ts")) files.push(join(dir, entry.name));
    }
  }
  // The base's kept boot files are taken in (and unpacked) by these.
  files.push("src/core/vm/direct_boot.ts", "src/core/vm/boot_unpack.ts");
  const parts: Uint8Array[] = [];
  for (const file of files.sort()) {
    parts.push(new TextEncoder().encode(`${file}\0`), await Deno.readFile(join(repoRoot, file)));
  }
  const all = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function _isBase(dir: string): Promise<boolean> {
  for (const file of ["system/generation", "ssh/id", _installLog]) {
    try {
      await Deno.lstat(join(dir, file));
    } catch {
      return false;
    }
  }
  return true;
}

let _base: Promise<string> | undefined;

/**
 * The directory of the run's sealed base (`system/`, `ssh/` and the
 * install's stderr in `install.log`), installed on first use. Concurrent
 * test processes wait on one lock, so that only one of them installs.
 */
export function sealedBase(): Promise<string> {
  _base ??= (async () => {
    const image = await _buildGuest();
    const dir = Deno.env.get("VIRTDEV_TEST_SEALED_BASE") ||
      join(dirname(image), `sealed-${await _installCodeHash()}`);
    await Deno.mkdir(dirname(dir), { recursive: true });
    using lock = await Deno.open(`${dir}.lock`, { create: true, write: true });
    await lock.lock(true);
    if (await _isBase(dir)) return dir;
    await _install(image, dir);
    return dir;
  })();
  return _base;
}

/** Installs and seals `image` in a throw-away store, then moves the result into `dir` in one rename. */
async function _install(image: string, dir: string): Promise<void> {
  await using sandbox = await makeSandbox(guestEnv);
  const key = await virtdev(sandbox, ["key"]);
  assert.equal(key.code, 0, key.stderr);
  const install = await virtdev(sandbox, ["install", "--image", image]);
  assert.equal(install.code, 0, install.stderr);
  const seal = await virtdev(sandbox, ["seal"]);
  assert.equal(seal.code, 0, seal.stderr);
  // Shown, so that a run's output tells how often it installed (CI: once, in the demo).
  // deno-lint-ignore no-console -- the install's own report, beside the tests.
  console.error(`tests/_guest.ts: installed the sealed base into ${dir}:\n${install.stderr}`);
  const staging = `${dir}.new`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await copyBase(sandbox.virtdevHome, staging);
  await Deno.writeTextFile(join(staging, _installLog), install.stderr);
  // CI's directory may exist already (made empty by mktemp): it is the one to fill.
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(staging, dir);
}

/**
 * Copies a sealed base and its key (`system/`, `ssh/`) from one
 * VIRTDEV_HOME to another, reflinked where possible. `to` must not hold
 * them yet (`cp -a dir existing-dir` would nest the copy).
 */
export async function copyBase(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o700 });
  for (const dir of ["system", "ssh"]) {
    const target = join(to, dir);
    await Deno.lstat(target).then(
      () => assert.fail(`copyBase: ${target} exists already`),
      () => {},
    );
    const output = await new Deno.Command("cp", {
      args: ["-a", "--reflink=auto", join(from, dir), target],
    }).output();
    assert.equal(output.code, 0, `copying ${dir}`);
  }
}

/**
 * A sandbox of the calling test file's own, with a copy of the run's
 * sealed base and SSH key, removed when the test process ends; `install`
 * is what the base's install printed.
 */
export async function sealedGuestSandbox(): Promise<{ sandbox: Sandbox; install: string }> {
  const base = await sealedBase();
  const sandbox = await makeSandbox(guestEnv);
  await copyBase(base, sandbox.virtdevHome);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(sandbox.root, { recursive: true });
    } catch {
      // Already gone.
    }
  });
  return { sandbox, install: await Deno.readTextFile(join(base, _installLog)) };
}

/** {@link sealedGuestSandbox}'s sandbox alone, for tests that change the base (maintain, upgrade). */
export async function copiedGuestSandbox(): Promise<Sandbox> {
  return (await sealedGuestSandbox()).sandbox;
}

if (import.meta.main) {
  // deno-lint-ignore no-console -- the script's one output: where the base is.
  console.log(await sealedBase());
}
