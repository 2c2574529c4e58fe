/**
 * Shared test fixtures: a throw-away HOME with its own VIRTDEV_HOME, and a
 * runner for the real CLI with exactly the `virtdev` task's permissions.
 */
import { join } from "node:path";
import { binaryPermissionFlags } from "../scripts/binary_permissions.ts";

const _root = new URL("..", import.meta.url).pathname;
const _denoDir = Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

/** The repository root. */
export const repoRoot: string = _root;

/** A temporary user home with virtdev's default directories under it. */
export interface Sandbox extends AsyncDisposable {
  readonly root: string;
  readonly home: string;
  readonly virtdevHome: string;
  readonly env: Record<string, string>;
}

/** The environment of sandboxes that boot small VMs without a guest: TCG, virtdev's own supervisor, quick stops. */
export const smallVmEnv: Readonly<Record<string, string>> = {
  VIRTDEV_ACCEL: "tcg",
  VIRTDEV_SUPERVISOR: "process",
  VIRTDEV_VM_MEMORY: "256",
  VIRTDEV_VM_CPUS: "1",
  VIRTDEV_STOP_TIMEOUT: "2",
};

/**
 * What runs a program so that file modes bind it as they bind a user: as
 * root (CI), without the capabilities that ignore them.
 */
export const asOwnerPrefix: readonly string[] = Deno.uid() === 0
  ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
  : [];

/** Makes a sandbox; dispose of it to delete it. */
export async function makeSandbox(extraEnv: Record<string, string> = {}): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "virtdev-test-" });
  const home = join(root, "home");
  await Deno.mkdir(home);
  const env = {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    DENO_DIR: _denoDir,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    ...extraEnv,
  };
  return {
    root,
    home,
    virtdevHome: join(home, ".local/share/virtdev"),
    env,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Which virtdev the tests run: `source` (the `virtdev` task) or `bundle`
 * (`dist/bundle/main.js`, built by `deno task bundle`, with the permissions
 * the compiled binary bakes in). Set by VIRTDEV_TEST_ENTRY.
 */
export const testEntry: "source" | "bundle" = Deno.env.get("VIRTDEV_TEST_ENTRY") === "bundle" ? "bundle" : "source";

/** The `deno` arguments that run virtdev as {@link testEntry} says, with `$HOME` filled in. */
export function taskArguments(home: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(_root, "deno.json")));
  const command: string = config.tasks.virtdev.command;
  if (testEntry === "bundle") {
    return ["run", ...binaryPermissionFlags(command, { self: "deno" }), join(_root, "dist/bundle/main.js")];
  }
  const words = command.replaceAll("$HOME", home).split(/\s+/);
  // "deno run ... src/main.ts" → the arguments after "deno".
  return words.slice(1).map((word) => word === "src/main.ts" ? join(_root, "src/main.ts") : word);
}

/** What a finished virtdev process left behind. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real CLI as its own process in `sandbox`. */
export async function virtdev(
  sandbox: Sandbox,
  args: readonly string[],
  options: { readonly stdin?: string; readonly env?: Record<string, string>; readonly prefix?: readonly string[] } = {},
): Promise<CliResult> {
  const child = spawnVirtdev(sandbox, args, options);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  } else {
    await child.stdin.close();
  }
  const output = await child.output();
  return {
    code: output.signal === "SIGKILL" ? 137 : output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Starts the real CLI without waiting for it. */
export function spawnVirtdev(
  sandbox: Sandbox,
  args: readonly string[],
  options: { readonly env?: Record<string, string>; readonly prefix?: readonly string[] } = {},
): Deno.ChildProcess {
  // `prefix`: a program that runs virtdev (e.g. setpriv, to drop capabilities).
  const argv = [...(options.prefix ?? []), Deno.execPath(), ...taskArguments(sandbox.home), ...args];
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { ...sandbox.env, ...options.env },
    clearEnv: true,
    cwd: sandbox.root,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs a program and returns its stdout; throws on failure. */
export async function sh(program: string, args: readonly string[]): Promise<string> {
  const output = await new Deno.Command(program, { args: [...args], stdout: "piped", stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** Makes `installation/` as `virtdev install` leaves it, with small real images. */
export async function makeInstallation(
  sandbox: Sandbox,
  options: { readonly pattern?: number; readonly firmwareVars?: string } = {},
): Promise<void> {
  const dir = join(sandbox.virtdevHome, "installation");
  await Deno.mkdir(dir, { recursive: true });
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "system.qcow2"), "64M"]);
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "home.qcow2"), "64M"]);
  if (options.pattern !== undefined) {
    await sh("qemu-io", ["-c", `write -P ${options.pattern} 0 1M`, join(dir, "system.qcow2")]);
    await sh("qemu-io", ["-c", `write -P ${options.pattern} 0 1M`, join(dir, "home.qcow2")]);
  }
  if (options.firmwareVars) await Deno.copyFile(options.firmwareVars, join(dir, "nvram"));
  else await Deno.writeFile(join(dir, "nvram"), new Uint8Array(4096));
}

/** Whether a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The exit code of the VirtdevError `fn` throws; `undefined` when it returns, -1 for another error. */
export function thrownExitCode(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof Error && "exitCode" in error ? Number(error.exitCode) : -1;
  }
  return undefined;
}

/** Kills the QEMU of each of `projects` that still runs, so a failed test leaves no VM behind. */
export async function killVms(sandbox: Sandbox, projects: readonly string[]): Promise<void> {
  for (const name of projects) {
    const pid = await Deno.readTextFile(join(sandbox.virtdevHome, "projects", name, "run", "qemu.pid")).catch(() => "");
    try {
      if (pid.trim()) Deno.kill(Number(pid.trim()), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/**
 * The runtime files of project `name`, spelled out here rather than taken
 * from the store under test, and `run/` itself: none may outlive the VM.
 */
export function runtimeFiles(sandbox: Sandbox, name: string): string[] {
  const run = join(sandbox.virtdevHome, "projects", name, "run");
  return [
    ...["monitor.sock", "qmp.sock", "console.sock", "qemu.pid", "runtime.json", "agent.json", "stopping", "net"].map((
      file,
    ) => join(run, file)),
    run,
  ];
}

/**
 * A sandbox with a sealed base of small blank images (pattern 7 over their
 * first MiB, real OVMF variables), a key, and `projects` created: for tests
 * that boot firmware only.
 */
export async function sealedSandbox(...projects: string[]): Promise<Sandbox> {
  const { resolveFirmware } = await import("../src/core/store/config.ts");
  const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
  const sandbox = await makeSandbox(smallVmEnv);
  await makeInstallation(sandbox, { firmwareVars: firmware.vars, pattern: 7 });
  for (const args of [["seal"], ["key"], ...projects.map((p) => ["create", p])]) {
    const result = await virtdev(sandbox, args);
    if (result.code !== 0) throw new Error(`virtdev ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  }
  return sandbox;
}

/**
 * Whether KVM runs the UEFI firmware here, asked without virtdev's probe:
 * OVMF under KVM must print to its serial console within 5 s (under TCG it
 * takes about 2.5 s; a KVM that stops it, or a QEMU that aborts, prints
 * nothing).
 */
export async function kvmRunsFirmwareHere(firmwareCode: string): Promise<boolean> {
  try {
    await Deno.stat("/dev/kvm");
  } catch {
    return false;
  }
  const child = new Deno.Command("qemu-system-x86_64", {
    args: [
      ...["-machine", "q35,accel=kvm", "-cpu", "host", "-m", "64", "-nodefaults", "-display", "none"],
      ...["-monitor", "none", "-serial", "stdio", "-drive", `if=pflash,format=raw,readonly=on,file=${firmwareCode}`],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const printed = await Promise.race([
    reader.read().then((chunk) => !chunk.done && chunk.value.length > 0),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
  ]);
  clearTimeout(timer);
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await reader.cancel().catch(() => {});
  await child.status;
  return printed;
}

/**
 * Runs one reseal swap (generation 1 to 2) on `sandbox`'s store in a child
 * process (`tests/_reseal_child.ts`), killed at `crashAt` when given.
 *
 * @returns its exit code, 137 when it was killed.
 */
export async function runResealSwap(sandbox: Sandbox, crashAt?: string): Promise<number> {
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "-A", join(repoRoot, "tests/_reseal_child.ts"), sandbox.virtdevHome],
    env: crashAt ? { VIRTDEV_TEST_CRASH_AT: crashAt } : {},
    stdout: "null",
    stderr: "piped",
  }).output();
  return child.signal === "SIGKILL" ? 137 : child.code;
}

/** Runs `work` in a fresh temporary directory, removed afterwards. */
export async function withDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await work(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
