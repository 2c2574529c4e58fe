/**
 * `deno task bench`: virtdev against bare floors (the same work with no
 * virtdev), measured in the same run on the test guest under the same
 * accelerator. Prints medians and ratios; asserts nothing.
 *
 *   create      vs 2× qemu-img create + the nvram copy
 *   start→wait  vs a bare qemu-system-x86_64 + a 50 ms SSH-banner poll
 *   stop        vs QMP system_powerdown + waitpid
 *   list        with 200 projects, vs list with 22
 *
 * Environment: VIRTDEV_BENCH_ROUNDS (boot rounds, default 2), VIRTDEV_ACCEL
 * (default tcg here; kvm where it works).
 */
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { QmpClient } from "../src/core/vm/qmp.ts";
import { qemuArguments } from "../src/core/vm/qemu_args.ts";
import { createProject } from "../src/core/projects/project.ts";
import { Store } from "../src/core/store/store.ts";
import { projectVmSpec } from "../src/core/vm/vm_lifecycle.ts";
import { exists, makeSandbox, repoRoot, sh, virtdev } from "../tests/_helpers.ts";
import { copyBase } from "../tests/_guest.ts";

const rounds = Number(Deno.env.get("VIRTDEV_BENCH_ROUNDS") ?? "2");
const accel = (Deno.env.get("VIRTDEV_ACCEL") ?? "tcg") as "kvm" | "tcg";

/** A result line, on stdout. */
function print(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
}

/** A progress line, on stderr. */
function log(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function must(sandbox: Awaited<ReturnType<typeof makeSandbox>>, ...args: string[]): Promise<void> {
  await mustWith(sandbox, {}, ...args);
}

async function mustWith(
  sandbox: Awaited<ReturnType<typeof makeSandbox>>,
  env: Record<string, string>,
  ...args: string[]
): Promise<void> {
  const result = await virtdev(sandbox, args, { env });
  if (result.code !== 0) throw new Error(`virtdev ${args.join(" ")} failed (${result.code}):\n${result.stderr}`);
}

/** Polls for an SSH banner every 50 ms. */
async function waitForBanner(port: number): Promise<void> {
  for (;;) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buffer = new Uint8Array(64);
        const read = connection.read(buffer);
        const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000));
        const n = await Promise.race([read, timeout]);
        if (n && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("SSH-")) return;
      } finally {
        connection.close();
      }
    } catch {
      // Not up yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const image = (await sh("bash", [join(repoRoot, "scripts/build_test_guest.sh")])).trim().split("\n").pop()!;
await using sandbox = await makeSandbox({
  VIRTDEV_ACCEL: accel,
  VIRTDEV_SUPERVISOR: "process",
  VIRTDEV_VM_CPUS: "2",
  VIRTDEV_VM_MEMORY: "1024",
  VIRTDEV_SYSTEM_DISK_SIZE: "4G",
  VIRTDEV_HOME_DISK_SIZE: "2G",
  VIRTDEV_WAIT_TIMEOUT: "600",
});
// In CI the end-to-end tests have installed this image's base already.
const sealed = Deno.env.get("VIRTDEV_TEST_SEALED_BASE");
if (sealed && await exists(join(sealed, "system", "generation"))) {
  log(`bench: copying the base the end-to-end tests installed (${sealed})`);
  await copyBase(sealed, sandbox.virtdevHome);
} else {
  log(`bench: installing the base from ${image} (${accel})...`);
  await must(sandbox, "key");
  await must(sandbox, "install", "--image", image);
  await must(sandbox, "seal");
}
const store = new Store(sandbox.virtdevHome);
const base = store.base;

// create
const floorCreate: number[] = [];
const oursCreate: number[] = [];
const coreCreate: number[] = [];
for (let i = 0; i < 10; i++) {
  const dir = join(sandbox.root, `floor-${i}`);
  await Deno.mkdir(dir);
  floorCreate.push(
    (await timed(async () => {
      await sh("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        base.systemImage,
        "-F",
        "qcow2",
        join(dir, "s.qcow2"),
      ]);
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base.homeImage, "-F", "qcow2", join(dir, "h.qcow2")]);
      await copyFile(base.nvram, join(dir, "nvram"));
    }))[0],
  );
  oursCreate.push((await timed(() => must(sandbox, "create", `c${i}`)))[0]);
  // The same work in-process: what create costs without the CLI's start-up.
  coreCreate.push((await timed(() => createProject(store, `k${i}`)))[0]);
}

// start → ready, and stop
const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
await must(sandbox, "create", "floor");
await must(sandbox, "create", "bench");
const floorReady: number[] = [];
const oursReady: number[] = [];
const floorStop: number[] = [];
const oursStop: number[] = [];
const slirpReady: number[] = [];
async function floorRound(): Promise<void> {
  const paths = store.project("floor");
  const port = 2299;
  const args = qemuArguments(
    projectVmSpec(paths, {
      config: { vmMemoryMiB: 1024, vmCpus: 2 },
      accel,
      firmwareCode: firmware.code,
      netdev: `user,id=net0,hostfwd=tcp:127.0.0.1:${port}-:22`,
    }),
  );
  await Deno.mkdir(paths.runDir, { recursive: true });
  const started = performance.now();
  // The bare floor: QEMU alone, its serial console (stdio) thrown away.
  const qemu = new Deno.Command("qemu-system-x86_64", { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  await waitForBanner(port);
  floorReady.push(performance.now() - started);
  floorStop.push(
    (await timed(async () => {
      const qmp = await QmpClient.connect(paths.runtime.qmpSocket);
      await qmp.execute("system_powerdown");
      await qemu.status;
      qmp.close();
    }))[0],
  );
}

async function oursRound(): Promise<void> {
  oursReady.push(
    (await timed(async () => {
      await must(sandbox, "start", "bench");
      await must(sandbox, "wait", "bench");
    }))[0],
  );
  oursStop.push((await timed(() => must(sandbox, "stop", "bench")))[0]);
  // The same boot on SLIRP: what passt costs (or saves) on the way to a login.
  slirpReady.push(
    (await timed(async () => {
      await mustWith(sandbox, { VIRTDEV_NET_BACKEND: "slirp" }, "start", "bench");
      await must(sandbox, "wait", "bench");
    }))[0],
  );
  await must(sandbox, "stop", "bench");
}

for (let round = 0; round < rounds; round++) {
  log(`bench: boot round ${round + 1}/${rounds}...`);
  // Alternate who boots first, so neither always meets a cold page cache.
  if (round % 2 === 0) {
    await floorRound();
    await oursRound();
  } else {
    await oursRound();
    await floorRound();
  }
}

// The CLI's own start-up, for reading the ratios above.
const startup: number[] = [];
for (let i = 0; i < 5; i++) startup.push((await timed(() => must(sandbox, "--version")))[0]);

// list
const listEmpty: number[] = [];
for (let i = 0; i < 5; i++) listEmpty.push((await timed(() => must(sandbox, "list", "--json")))[0]);
const fewCount = (await store.listProjects()).length;
log("bench: making 200 projects...");
for (let i = fewCount; i < 200; i++) await createProject(store, `p${i}`);
const listFull: number[] = [];
for (let i = 0; i < 5; i++) listFull.push((await timed(() => must(sandbox, "list", "--json")))[0]);
const count = (await store.listProjects()).length;

const seconds = (values: readonly number[]): string => values.map((v) => `${(v / 1000).toFixed(1)}s`).join(", ");
const row = (label: string, ours: number[], floor: number[], unit = "ms"): string => {
  const o = median(ours);
  const f = median(floor);
  return `${label.padEnd(26)} ${o.toFixed(0).padStart(8)} ${unit}  floor ${f.toFixed(0).padStart(8)} ${unit}  ratio ${
    (o / f).toFixed(2)
  }x`;
};
print(`virtdev bench (${accel}, ${rounds} boot rounds, medians)`);
print(row("create (CLI)", oursCreate, floorCreate));
print(row("create (core, in-process)", coreCreate, floorCreate));
print(row("CLI start-up (--version)", startup, floorCreate));
print(row("start→wait (ready)", oursReady, floorReady));
print(`  boot rounds: ours ${seconds(oursReady)}; floor ${seconds(floorReady)}`);
print(row("start→wait, passt vs SLIRP", oursReady, slirpReady));
print(`  boot rounds: SLIRP ${seconds(slirpReady)}`);
print(row("stop", oursStop, floorStop));
print(row(`list (${count} vs ${fewCount} projects)`, listFull, listEmpty));
