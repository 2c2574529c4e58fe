/**
 * `deno task bench`: virtdev against bare floors (the same work with no
 * virtdev), measured in the same run on the test guest under the same
 * accelerator. Prints medians and ratios; asserts nothing.
 *
 *   start-up    --version, path, status and list (one project), from source
 *               and from the bundle, vs an empty `deno run` script
 *   create      vs 2× qemu-img create + the nvram copy
 *   start→wait  vs a bare qemu-system-x86_64 read for the guest's ready line
 *               on its serial console, then one `ssh true` (the same work: a
 *               login that works), with the boot timeline of our rounds;
 *               one boot of each comes first and is not counted
 *   clone       vs copying the deltas and nvram and making a host key
 *   stop        vs QMP system_powerdown + waitpid
 *   direct      start→wait booting the base's kept kernel, against the same
 *               project through the UEFI firmware and boot loader
 *   ephemeral   `run --ephemeral -- true` from the warm image, against the
 *               first one (which boots and saves the image)
 *   suspend     of the running project (4 GiB configured), its state file
 *               against the memory the guest used, and the resume's
 *               start→wait against the same project's cold start→wait (at
 *               once; once more, for reference, after 5 s suspended)
 *   list        with 200 projects, vs list with 22
 *
 * Environment: VIRTDEV_BENCH_ROUNDS (boot rounds, default 3), VIRTDEV_ACCEL
 * (default tcg here; kvm where it works), VIRTDEV_BENCH_SMOKE=1 (CI's smoke
 * run: one round after one warm-up boot each, fewer samples, the bundle
 * as built; it exits 1 unless every boot reached a login and every ratio
 * is a number).
 * Every boot has a deadline (VIRTDEV_BENCH_BOOT_TIMEOUT, default 600 s).
 */
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { QmpClient } from "../src/core/vm/qmp.ts";
import { qemuArguments } from "../src/core/vm/qemu_args.ts";
import { createProject } from "../src/core/projects/project.ts";
import { cloneProject } from "../src/core/projects/clone.ts";
import { Store } from "../src/core/store/store.ts";
import { projectVmSpec } from "../src/core/vm/vm_lifecycle.ts";
import { directKernelAppend, readKeptBoot } from "../src/core/vm/direct_boot.ts";
import { exists, makeSandbox, repoRoot, sh, taskArguments, virtdev } from "../tests/_helpers.ts";
import { sshArguments } from "../src/core/guest/ssh.ts";
import { lastBootTimeline } from "../src/core/vm/boot_timeline.ts";
import { readAgentState } from "../src/core/vm/agent_state.ts";
import { consoleTailLines, MarkerScanner } from "../src/core/vm/console_log.ts";
import { readinessLine } from "../src/core/guest/guest_contract.ts";
import { binaryPermissionFlags, virtdevTaskCommand } from "./binary_permissions.ts";
import { copyBase } from "../tests/_guest.ts";
import { tcpFrame as benchTcpFrame } from "../tests/_frames.ts";
import { EgressFilter } from "../src/core/vm/egress/egress_filter.ts";
import { parseAddress } from "../src/core/vm/egress/address.ts";

const smoke = Deno.env.get("VIRTDEV_BENCH_SMOKE") === "1";
const rounds = smoke ? 1 : Number(Deno.env.get("VIRTDEV_BENCH_ROUNDS") ?? "3");
/** Samples of each quick measurement (create, clone, start-up, list): fewer in the smoke run. */
const samples = (full: number) => smoke ? Math.min(full, 3) : full;
const bootDeadlineMs = Number(Deno.env.get("VIRTDEV_BENCH_BOOT_TIMEOUT") ?? "600") * 1000;
/** Every ratio printed, checked by the smoke run. */
const ratios: { label: string; value: number }[] = [];
const accel = (Deno.env.get("VIRTDEV_ACCEL") ?? "tcg") as "kvm" | "tcg";

/**
 * The filter's own work per frame, in this process: data frames of an
 * open connection and new connections judged, against merely copying the
 * frames (what any relay does).
 */
function filterRow(): string {
  const filter = new EgressFilter(
    { zone: "wan", name: "wan", allowed: [] },
    { addresses: [parseAddress("192.0.2.2")!], subnets: [] },
  );
  const frame = (flags: number, sport: number, payload: number) =>
    benchTcpFrame({
      src: "192.0.2.9",
      dst: "203.0.113.80",
      srcPort: sport,
      dstPort: 80,
      flags,
      payload: new Uint8Array(payload),
    });
  filter.fromGuest(frame(0x02, 40000, 0));
  const data = frame(0x18, 40000, 1448);
  const count = 200_000;
  let start = performance.now();
  for (let i = 0; i < count; i++) filter.fromGuest(data);
  const judged = performance.now() - start;
  start = performance.now();
  let sink = 0;
  for (let i = 0; i < count; i++) sink += data.slice().length;
  const copied = performance.now() - start;
  const syns = 20_000;
  start = performance.now();
  for (let i = 0; i < syns; i++) filter.fromGuest(frame(0x02, 1024 + (i % 60000), 0));
  const opened = performance.now() - start;
  ratios.push({ label: "filter per frame", value: judged / Math.max(copied, 0.001) });
  const mib = (count * data.length) / 2 ** 20;
  return `${"filter, in-process".padEnd(30)} ${
    (mib / (judged / 1000)).toFixed(0).padStart(8)
  } MiB/s of 1448-byte frames judged (copying them: ${(mib / (copied / 1000)).toFixed(0)} MiB/s); a new connection ${
    (opened / syns * 1000).toFixed(1)
  } µs (${sink > 0 ? "ok" : "-"})`;
}

/** A result line, on stdout. */
function print(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
}

/** A progress line, on stderr. */
function log(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}

/**
 * One step of the boot rounds, logged with its time, under a deadline: a
 * step that hangs (a guest that stops answering, a command that never
 * ends) fails the bench with what the guest's logs last said, instead of
 * holding CI until its own limit.
 */
async function step<T>(label: string, work: () => Promise<T>, deadlineMs = bootDeadlineMs + 60_000): Promise<T> {
  const started = performance.now();
  log(`bench:   ${label}...`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new _StepTimeout(label, deadlineMs)), deadlineMs)
  );
  try {
    const value = await Promise.race([work(), expired]);
    log(`bench:   ${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return value;
  } catch (error) {
    if (error instanceof _StepTimeout) await _hungStep(error);
    _endSandboxProcesses();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

class _StepTimeout extends Error {
  constructor(readonly label: string, readonly deadlineMs: number) {
    super(`bench: ${label} did not end within ${deadlineMs / 1000} s`);
  }
}

/** What a hung step leaves to read: the guests' logs and the processes still running; then the bench ends. */
async function _hungStep(error: _StepTimeout): Promise<never> {
  log(`bench: FAILED: ${error.message}`);
  for (const name of ["bench", "floor"]) {
    const paths = store.project(name);
    for (const file of [paths.vmLog, paths.consoleLog]) {
      const tail = (await consoleTailLines(file, { lines: 25, maxBytes: 8192 })).join("\n");
      log(`bench: ---- ${file} (last lines) ----\n${tail}`);
    }
  }
  const ps = await new Deno.Command("ps", { args: ["-eo", "pid,ppid,stat,etime,time,args"], stdout: "piped" })
    .output().catch(() => undefined);
  const lines = new TextDecoder().decode(ps?.stdout ?? new Uint8Array()).split("\n");
  log(
    `bench: ---- processes of this sandbox ----\n${
      lines.filter((line) => line.includes(sandbox.root) || /qemu|passt|ssh /.test(line)).join("\n")
    }`,
  );
  _endSandboxProcesses();
  Deno.exit(1);
}

/** Nothing of a failed run may outlive it: its QEMUs, agents, filters and passts all name the sandbox. */
function _endSandboxProcesses(): void {
  try {
    new Deno.Command("pkill", { args: ["-KILL", "-f", sandbox.root], stdout: "null", stderr: "null" }).outputSync();
  } catch {
    // No pkill: the processes end with the CI container.
  }
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

const image = (await sh("bash", [join(repoRoot, "scripts/build_test_guest.sh")])).trim().split("\n").pop()!;
/** Every VM's memory, the floor's too: the suspend goal is stated for 4 GiB (memory a guest never touches costs nothing). */
const benchMemoryMiB = 4096;
await using sandbox = await makeSandbox({
  VIRTDEV_ACCEL: accel,
  VIRTDEV_SUPERVISOR: "process",
  VIRTDEV_VM_CPUS: "2",
  VIRTDEV_VM_MEMORY: String(benchMemoryMiB),
  VIRTDEV_SYSTEM_DISK_SIZE: "4G",
  VIRTDEV_HOME_DISK_SIZE: "2G",
  VIRTDEV_WAIT_TIMEOUT: String(bootDeadlineMs / 1000),
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
async function floorCreateOnce(name: string): Promise<void> {
  const dir = join(sandbox.root, name);
  await Deno.mkdir(dir);
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base.systemImage, "-F", "qcow2", join(dir, "s.qcow2")]);
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base.homeImage, "-F", "qcow2", join(dir, "h.qcow2")]);
  await copyFile(base.nvram, join(dir, "nvram"));
}
const floorCreate: number[] = [];
const oursCreate: number[] = [];
const coreCreate: number[] = [];
for (let i = 0; i < samples(10); i++) {
  floorCreate.push((await timed(() => floorCreateOnce(`floor-${i}`)))[0]);
  oursCreate.push((await timed(() => must(sandbox, "create", `c${i}`)))[0]);
  // The same work in-process: what create costs without the CLI's start-up.
  coreCreate.push((await timed(() => createProject(store, `k${i}`)))[0]);
}

// start → ready, and stop
const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
const keptBoot = await readKeptBoot(base);
log(
  keptBoot
    ? "bench: the base keeps its kernel: boots are direct, with one through the firmware per round"
    : "bench: the base keeps no kernel: every boot goes through the firmware",
);
await must(sandbox, "create", "floor");
await must(sandbox, "create", "bench");
const floorReady: number[] = [];
const floorBanner: number[] = [];
const timelines: Map<string, number>[] = [];
const oursReady: number[] = [];
const floorStop: number[] = [];
const oursStop: number[] = [];
const slirpReady: number[] = [];
/** Ours through the firmware and boot loader (VIRTDEV_BOOT=firmware), beside the direct boots. */
const firmwareReady: number[] = [];
async function floorRound(): Promise<void> {
  await step("floor: boot, ready line, login and power-off", _floorRound, 2 * bootDeadlineMs + 180_000);
}
async function _floorRound(): Promise<void> {
  const paths = store.project("floor");
  const port = 2299;
  const spec = projectVmSpec(paths, {
    config: { vmMemoryMiB: benchMemoryMiB, vmCpus: 2 },
    accel,
    firmwareCode: firmware.code,
    netdev: `user,id=net0,hostfwd=tcp:127.0.0.1:${port}-:22`,
    instance: true,
  });
  // The same boot path as ours: the base's kernel directly where the base kept it.
  const args = qemuArguments(
    keptBoot
      ? {
        ...spec,
        directKernel: { kernel: keptBoot.kernel, initrd: keptBoot.initrd, append: directKernelAppend(keptBoot) },
      }
      : spec,
  );
  await Deno.mkdir(paths.runDir, { recursive: true });
  const started = performance.now();
  // The bare floor: QEMU alone, read for the guest's ready line on its
  // serial console (stdio), then one login, as 'wait' does.
  const qemu = new Deno.Command("qemu-system-x86_64", { args, stdin: "null", stdout: "piped", stderr: "null" }).spawn();
  const scanner = new MarkerScanner([readinessLine]);
  const reader = qemu.stdout.getReader();
  // A guest that never gets ready must not hang the bench: past the deadline QEMU is killed.
  const deadline = started + bootDeadlineMs;
  const killer = setTimeout(() => {
    try {
      qemu.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, bootDeadlineMs);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(
        `the floor's QEMU ended (or was killed after ${bootDeadlineMs / 1000} s) before its guest was ready`,
      );
    }
    if (scanner.push(value).length > 0) break;
  }
  floorBanner.push(performance.now() - started);
  // Keep draining the console, so the guest never blocks on it.
  (async () => {
    while (!(await reader.read()).done) {
      // Thrown away.
    }
  })();
  const target = {
    project: "floor",
    port,
    identity: join(sandbox.virtdevHome, "ssh/id"),
    knownHosts: paths.knownHosts,
  };
  for (let delay = 50;; delay = Math.min(delay * 2, 1000)) {
    const login = await new Deno.Command("ssh", {
      args: sshArguments(target, ["true"], { batch: true }),
      stdout: "null",
      stderr: "null",
    }).output();
    if (login.code === 0) break;
    if (performance.now() > deadline) {
      qemu.kill("SIGKILL");
      throw new Error(`the floor's guest took no SSH login within ${bootDeadlineMs / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  clearTimeout(killer);
  floorReady.push(performance.now() - started);
  floorStop.push(
    (await timed(async () => {
      const qmp = await QmpClient.connect(paths.runtime.qmpSocket);
      await qmp.execute("system_powerdown");
      // A guest that ignores the power button is killed after two minutes, and the round fails.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const halted = await Promise.race([
        qemu.status.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 120_000)),
      ]);
      clearTimeout(timer);
      qmp.close();
      if (!halted) {
        qemu.kill("SIGKILL");
        throw new Error("the floor's guest did not power off within 120 s");
      }
    }))[0],
  );
}

/** The egress filter's cost, measured in the guest against a server on a host address the guest does not share. */
const netRows: string[] = [];
const netDownload: Record<string, number[]> = { wan: [], full: [] };
const netConnect: Record<string, number[]> = { wan: [], full: [] };
async function netRound(): Promise<void> {
  if (Deno.uid() !== 0) {
    netRows.push("  network: left out (needs root for a host address the guest does not share)");
    return;
  }
  // passt gives the guest the host's own address: the server sits on one it does not have.
  // (On lo: some kernels here have no dummy interfaces. It is still not a loopback address to the filter.)
  // A run killed mid-way leaves the address behind.
  await sh("ip", ["addr", "del", "10.79.0.1/32", "dev", "lo"]).catch(() => {});
  await sh("ip", ["addr", "add", "10.79.0.1/32", "dev", "lo"]);
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    const blob = new Uint8Array((smoke ? 16 : 32) << 20);
    server = Deno.serve(
      { hostname: "10.79.0.1", port: 0, onListen: () => {} },
      (request) => new Response(new URL(request.url).pathname === "/blob" ? blob : "ok"),
    );
    const port = server.addr.port;
    // wan does not reach this host: the allowlist lets the one address through, as a user would.
    await must(sandbox, "allow", "bench", `10.79.0.1:${port}`);
    const script = `
import time, urllib.request
def get(path):
    start = time.monotonic(); n = len(urllib.request.urlopen("http://10.79.0.1:${port}" + path, timeout=120).read()); return time.monotonic() - start, n
print(" ".join("%.6f" % get("/tiny")[0] for _ in range(${samples(20)})))
print(" ".join("%.3f" % (n / t / 2**20) for t, n in (get("/blob") for _ in range(${samples(3)}))))
`;
    for (const zone of smoke ? ["wan", "full"] : ["wan", "full", "wan", "full"]) {
      log(`bench:     ${zone}: net, then the measurement in the guest`);
      await must(sandbox, "net", "bench", zone);
      const result = await virtdev(sandbox, ["ssh", "bench", "--", "python3", "-"], { stdin: script });
      if (result.code !== 0) throw new Error(`the network measurement failed: ${result.stderr}`);
      const [connects, downloads] = result.stdout.trim().split("\n").map((line) => line.split(" ").map(Number));
      netConnect[zone].push(...connects.map((s) => s * 1000));
      netDownload[zone].push(...downloads);
    }
    await must(sandbox, "net", "bench", "wan");
    await must(sandbox, "allow", "bench", "--remove", `10.79.0.1:${port}`);
  } finally {
    await server?.shutdown();
    await sh("ip", ["addr", "del", "10.79.0.1/32", "dev", "lo"]).catch(() => {});
  }
}

async function oursRound(withSlirp: boolean, measureNet = false): Promise<void> {
  oursReady.push(
    (await timed(async () => {
      await step("ours: start", () => must(sandbox, "start", "bench"));
      await step("ours: wait", () => must(sandbox, "wait", "bench"));
    }))[0],
  );
  if (measureNet) await step("ours: network measurement", netRound, 300_000);
  await step("ours: suspend and resume", suspendRound, 300_000);
  if (measureNet) await step("ours: suspend for 5 s and resume", () => suspendRound({ long: true }), 300_000);
  oursStop.push((await timed(() => step("ours: stop", () => must(sandbox, "stop", "bench"))))[0]);
  // After the stop: a getty that came after the login is in by then.
  timelines.push(lastBootTimeline(await Deno.readTextFile(store.project("bench").vmLog)));
  // The same project through the UEFI firmware and the boot loader: what the direct boot saves.
  if (keptBoot) {
    firmwareReady.push(
      (await timed(async () => {
        await step(
          "ours through the firmware: start",
          () => mustWith(sandbox, { VIRTDEV_BOOT: "firmware" }, "start", "bench"),
        );
        await step("ours through the firmware: wait", () => must(sandbox, "wait", "bench"));
      }))[0],
    );
    await step("ours through the firmware: stop", () => must(sandbox, "stop", "bench"));
  }
  // The same boot on SLIRP, every other round: what passt costs (or saves) on the way to a login.
  if (!withSlirp) return;
  slirpReady.push(
    (await timed(async () => {
      // SLIRP cannot enforce a zone: this boot reaches everything (--net full, for it only).
      await step(
        "ours on SLIRP: start",
        () => mustWith(sandbox, { VIRTDEV_NET_BACKEND: "slirp" }, "start", "--net", "full", "bench"),
      );
      await step("ours on SLIRP: wait", () => must(sandbox, "wait", "bench"));
    }))[0],
  );
  await step("ours on SLIRP: stop", () => must(sandbox, "stop", "bench"));
}

const suspendSeconds: number[] = [];
const resumeReady: number[] = [];
const stateBytes: number[] = [];
const guestUsedBytes: number[] = [];
/** RAM − MemFree: what the guest holds, its kernel's reservations (the page map, 64 MiB for 4 GiB) included. */
const guestHeldBytes: number[] = [];
const clockSkews: number[] = [];
/** Who set the clock at each resume (`run/agent.json`): the armed helper, or sudo where it did not answer. */
const clockSetters: string[] = [];
/** The resume of the last round's second suspend, which lasted {@link _longSuspendMs}. */
const resumeAfterLongSuspend: number[] = [];
/**
 * How long the reference suspend lasts: past the 3 s its clock's hand-off was once bounded by, and past the moment
 * this host (itself a VM) hands freed memory back to its hypervisor, so that QEMU's load then faults fresh pages in.
 */
const _longSuspendMs = 5_000;
/**
 * Suspends the running 'bench' and resumes it: start→wait, with the clock set. The goal's rounds resume at once;
 * `long` suspends for {@link _longSuspendMs} first, as a reference.
 */
async function suspendRound(options: { readonly long?: boolean } = {}): Promise<void> {
  const seconds = (await timed(() => must(sandbox, "suspend", "bench")))[0];
  if (options.long) {
    await new Promise((resolve) => setTimeout(resolve, _longSuspendMs));
    const resumed = await resumeTimed();
    resumeAfterLongSuspend.push(resumed.ms);
    clockSetters.push(`${resumed.clockBy} (after ${_longSuspendMs / 1000} s)`);
    return;
  }
  suspendSeconds.push(seconds);
  const saved = JSON.parse(await Deno.readTextFile(join(store.project("bench").suspended, "state.json")));
  stateBytes.push(saved.memoryBytes);
  if (typeof saved.guestUsedBytes === "number") guestUsedBytes.push(saved.guestUsedBytes);
  if (typeof saved.guestHeldBytes === "number") guestHeldBytes.push(saved.guestHeldBytes);
  const resumed = await resumeTimed();
  resumeReady.push(resumed.ms);
  clockSetters.push(resumed.clockBy);
  const before = Date.now();
  const guestNow = await virtdev(sandbox, ["ssh", "bench", "--", "date +%s.%N"]);
  clockSkews.push(Math.abs(Number(guestNow.stdout.trim()) - (before + Date.now()) / 2000));
}

/** Resumes the suspended 'bench': start→wait in ms, and who set its clock (the host agent's record). */
async function resumeTimed(): Promise<{ readonly ms: number; readonly clockBy: string }> {
  const [ms] = await timed(async () => {
    await must(sandbox, "start", "bench");
    await must(sandbox, "wait", "bench");
  });
  return { ms, clockBy: (await readAgentState(store.project("bench")))?.clock?.by ?? "nobody" };
}

/** CPU ticks used so far by each process on the host, with its command line: what else ran during the boots. */
async function hostCpu(): Promise<Map<string, { ticks: number; command: string }>> {
  const found = new Map<string, { ticks: number; command: string }>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const command = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll("\0", " ").trim();
      found.set(`${entry.name} ${fields[19]}`, { ticks: Number(fields[11]) + Number(fields[12]), command });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
const cpuBefore = await hostCpu();
const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

// One boot of each first, not counted: a project's first boot grows its
// file systems into the disks (seconds of guest CPU under TCG), and the
// first QEMU of the run meets a cold page cache. In CI that round ran 5 to
// 15 % slower than the rest, for the floor and for us alike.
if (smoke) {
  // One plain boot each is enough to leave the first-boot work out: the
  // direct boot and the resume are then set against warm boots, as the
  // firmware boot (always a later one) is.
  log("bench: warm-up boots, one each (not counted)...");
  await floorRound();
  await step("ours (warm-up): start", () => must(sandbox, "start", "bench"));
  await step("ours (warm-up): wait", () => must(sandbox, "wait", "bench"));
  await step("ours (warm-up): stop", () => must(sandbox, "stop", "bench"));
  for (const kept of [floorReady, floorBanner, floorStop, timelines]) kept.length = 0;
} else {
  log("bench: warm-up boots (not counted)...");
  await floorRound();
  await oursRound(false);
  for (
    const kept of [floorReady, floorBanner, floorStop, oursReady, oursStop, timelines, suspendSeconds, resumeReady]
  ) kept.length = 0;
  firmwareReady.length = 0;
  for (const kept of [stateBytes, guestUsedBytes, guestHeldBytes, clockSkews, resumeAfterLongSuspend]) kept.length = 0;
  clockSetters.length = 0;
}
for (let round = 0; round < rounds; round++) {
  log(`bench: boot round ${round + 1}/${rounds}...`);
  // Alternate who boots first, so neither always boots right after the other.
  if (round % 2 === 0) {
    await floorRound();
    // The smoke run leaves out the SLIRP boot: CI's network test boots SLIRP beside passt already.
    await oursRound(!smoke, round === rounds - 1);
  } else {
    await oursRound(false, round === rounds - 1);
    await floorRound();
  }
}

// What else used the host's CPU while the rounds ran (processes alive before and after them).
const cpuAfter = await hostCpu();
const ticksPerSecond = 100;
const busiest = [...cpuAfter].map(([key, after]) => ({
  command: after.command,
  seconds: (after.ticks - (cpuBefore.get(key)?.ticks ?? 0)) / ticksPerSecond,
})).filter((p) => p.seconds >= 0.5 && !p.command.includes("scripts/bench.ts")).sort((a, b) => b.seconds - a.seconds);
const loadAfter = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

const benchPaths = store.project("bench");
// Disposable runs: the first boots and saves the warm image, the next resume from it.
log("bench: run --ephemeral, the first (boots, saves the warm image) and then from the warm image...");
const ephemeralCold =
  (await timed(() => step("run --ephemeral (cold)", () => must(sandbox, "run", "--ephemeral", "bench", "--", "true"))))[
    0
  ];
const ephemeralWarm: number[] = [];
for (let i = 0; i < samples(5); i++) {
  ephemeralWarm.push(
    (await timed(() =>
      step("run --ephemeral (warm)", () => must(sandbox, "run", "--ephemeral", "bench", "--", "true"))
    ))[0],
  );
}
// A warm run far off the others (one took 12.4 s among runs of 2 s) is kept for a look: the sandbox goes at the end.
if (ephemeralWarm.some((ms) => ms > 2 * median(ephemeralWarm))) {
  const kept = await Deno.makeTempFile({ prefix: "virtdev-bench-warm-outlier-", suffix: ".log" });
  await Deno.copyFile(benchPaths.vmLog, kept);
  log(`bench: a warm run took over twice the median; the project's vm.log is kept in ${kept}`);
}

// clone: the CLI against copying the two deltas and the nvram (reflinks where
// the file system allows), after the boots have written into them.
const cloneFloor: number[] = [];
const cloneOurs: number[] = [];
const cloneCore: number[] = [];
for (let i = 0; i < samples(5); i++) {
  const dir = join(sandbox.root, `clone-floor-${i}`);
  await Deno.mkdir(dir);
  cloneFloor.push(
    (await timed(() =>
      sh("cp", [
        "-a",
        "--reflink=auto",
        "--sparse=always",
        benchPaths.systemImage,
        benchPaths.homeImage,
        benchPaths.nvram,
        dir,
      ])
    ))[0],
  );
  cloneOurs.push((await timed(() => must(sandbox, "clone", "bench", `clone-${i}`)))[0]);
  cloneCore.push(
    (await timed(() =>
      cloneProject(store, "bench", `core-clone-${i}`, { configDir: join(sandbox.home, ".config/virtdev") })
    ))[0],
  );
}
const allocated = async (file: string) => ((await Deno.stat(file)).blocks ?? 0) * 512;
const deltaBytes = (await allocated(benchPaths.systemImage)) + (await allocated(benchPaths.homeImage));
const baseBytes = (await allocated(base.systemImage)) + (await allocated(base.homeImage));

// Start-up: short commands against an empty script run by the same Deno,
// from source (the virtdev task) and from the bundle (the binary's flags).
// The smoke run measures the bundle CI built; the full bench builds it from this tree.
if (!smoke || !await exists(join(repoRoot, "dist/bundle/main.js"))) {
  await sh(Deno.execPath(), ["task", "--cwd", repoRoot, "bundle"]);
}
const emptyScript = join(sandbox.root, "empty.js");
await Deno.writeTextFile(emptyScript, "");
const bundleArgs = [
  "run",
  ...binaryPermissionFlags(await virtdevTaskCommand(), { self: "deno" }),
  join(repoRoot, "dist/bundle/main.js"),
];
// A store with one project, as the goal is stated; its base is a copy (a reflink where possible).
const { HOME: _benchHome, ...oneEnv } = sandbox.env;
const onlyOne = await makeSandbox(oneEnv);
await copyBase(sandbox.virtdevHome, onlyOne.virtdevHome);
await createProject(new Store(onlyOne.virtdevHome), "one");
async function runDeno(args: readonly string[], env: Record<string, string> = onlyOne.env): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...args],
    env,
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(`deno ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
}
const startupCommands: readonly (readonly string[])[] = [
  ["--version"],
  ["--help"],
  ["start", "--help"],
  ["path", "one"],
  ["status", "one"],
  ["list"],
];
const startupRows: string[] = [];
const emptyRuns: number[] = [];
const startupRuns = new Map<string, number[]>();
for (let i = 0; i < samples(15); i++) {
  emptyRuns.push((await timed(() => runDeno(["run", emptyScript])))[0]);
  for (const [entry, prefix] of [["source", taskArguments(onlyOne.home)], ["bundle", bundleArgs]] as const) {
    for (const command of startupCommands) {
      const key = `${command.join(" ")} (${entry})`;
      const runs = startupRuns.get(key) ?? [];
      runs.push((await timed(() => runDeno([...prefix, ...command])))[0]);
      startupRuns.set(key, runs);
    }
  }
}
for (const [key, runs] of startupRuns) startupRows.push(row(key, runs, emptyRuns));
const bundleCreate: number[] = [];
const bundleFloorCreate: number[] = [];
for (let i = 0; i < samples(10); i++) {
  bundleFloorCreate.push((await timed(() => floorCreateOnce(`bf-${i}`)))[0]);
  bundleCreate.push((await timed(() => runDeno([...bundleArgs, "create", `b${i}`], sandbox.env)))[0]);
}
await onlyOne[Symbol.asyncDispose]();

// list
const listEmpty: number[] = [];
for (let i = 0; i < 5; i++) listEmpty.push((await timed(() => must(sandbox, "list", "--json")))[0]);
const fewCount = (await store.listProjects()).length;
log("bench: making 200 projects...");
for (let i = fewCount; i < 200; i++) await createProject(store, `p${i}`);
const listFull: number[] = [];
for (let i = 0; i < 5; i++) listFull.push((await timed(() => must(sandbox, "list", "--json")))[0]);
const count = (await store.listProjects()).length;

function seconds(values: readonly number[]): string {
  return values.map((v) => `${(v / 1000).toFixed(1)}s`).join(", ");
}
function row(label: string, ours: number[], floor: number[], unit = "ms"): string {
  const o = median(ours);
  const f = median(floor);
  ratios.push({ label, value: o / f });
  return `${label.padEnd(30)} ${o.toFixed(0).padStart(8)} ${unit}  floor ${f.toFixed(0).padStart(8)} ${unit}  ratio ${
    (o / f).toFixed(2)
  }x`;
}
print(
  smoke
    ? `virtdev bench, smoke run (${accel}, 1 boot round, no warm-up, medians of ${samples(10)})`
    : `virtdev bench (${accel}, ${rounds} boot rounds after a warm-up boot each, medians)`,
);
print(row("create (CLI)", oursCreate, floorCreate));
print(row("create (core, in-process)", coreCreate, floorCreate));
print(row("create (bundle)", bundleCreate, bundleFloorCreate));
print(row("clone (CLI)", cloneOurs, cloneFloor));
print(row("clone (core, in-process)", cloneCore, cloneFloor));
print(
  `  deltas ${(deltaBytes / 2 ** 20).toFixed(0)} MiB on disk; the base's ${
    (baseBytes / 2 ** 20).toFixed(0)
  } MiB is not copied`,
);
print(
  "start-up, against an empty deno run script (goal ≤ 2x for the bundle, which is what the binary runs; from source each module is its own load, shown for reference):",
);
for (const line of startupRows) print(`  ${line}`);
print(row("start→wait (a login works)", oursReady, floorReady));
print(`  boot rounds: ours ${seconds(oursReady)}; floor ${seconds(floorReady)} (ready line ${seconds(floorBanner)})`);
print(
  `  per round, ours against the floor: ${oursReady.map((o, i) => `${(o / floorReady[i]).toFixed(2)}x`).join(", ")}`,
);
const milestones = ["qmp", "console", "bootloader", "getty", "ready", "ssh login"];
print(`  timeline (median s since QEMU spawned): ${
  milestones.map((name) => {
    const values = timelines.map((t) => t.get(name)).filter((v): v is number => v !== undefined);
    return `${name} ${values.length ? (median(values)).toFixed(2) : "-"}`;
  }).join(", ")
}`);
for (const [i, t] of timelines.entries()) {
  print(`    round ${i + 1}: ${[...t].map(([name, value]) => `${name} ${value.toFixed(2)}`).join(", ")}`);
}
print(
  `  host: load ${loadBefore} before the boots, ${loadAfter} after; other processes that used ≥ 0.5 s CPU meanwhile: ${
    busiest.length === 0
      ? "none"
      : busiest.slice(0, 5).map((p) => `${p.command.slice(0, 60)} (${p.seconds.toFixed(1)} s)`).join("; ")
  }`,
);
if (firmwareReady.length > 0) {
  print(row("start→wait, direct vs firmware", oursReady, firmwareReady));
  print(`  boot rounds: direct ${seconds(oursReady)}; through the firmware ${seconds(firmwareReady)} (goal ≤ 0.8x)`);
} else {
  print("start→wait, direct vs firmware  - (the base keeps no kernel)");
}
if (slirpReady.length > 0) {
  print(row("start→wait, passt vs SLIRP", oursReady, slirpReady));
  print(`  boot rounds: SLIRP ${seconds(slirpReady)}`);
}
if (netDownload.wan.length > 0) {
  // Higher is better for a download: the ratio is wan's speed over full's (goal ≥ 0.8).
  const wan = median(netDownload.wan);
  const full = median(netDownload.full);
  ratios.push({ label: "download wan/full", value: wan / full });
  print(
    `${"download, wan vs full (MiB/s)".padEnd(30)} ${wan.toFixed(1).padStart(8)}     full ${
      full.toFixed(1).padStart(8)
    }     ratio ${(wan / full).toFixed(2)}x`,
  );
  print(row("connect+GET, wan vs full", netConnect.wan, netConnect.full));
}
for (const line of netRows) print(line);
print(filterRow());
print(row("stop", oursStop, floorStop));
print(row("run --ephemeral -- true, warm vs cold", ephemeralWarm, [ephemeralCold]));
print(
  `  from the warm image ${seconds(ephemeralWarm)} (goal ≤ 3 s); the first, which boots and saves it, ${
    seconds([ephemeralCold])
  }`,
);
if (resumeReady.length > 0) {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  print(row("resume start→wait vs cold", resumeReady, oursReady));
  print(
    `  resume ${seconds(resumeReady)} (goal ≤ 2 s and ≤ 0.1x); cold ${seconds(oursReady)}; guest clock off by ${
      clockSkews.map((v) => `${v.toFixed(2)} s`).join(", ")
    } after the resume; set by ${clockSetters.join(", ")}`,
  );
  if (resumeAfterLongSuspend.length > 0) {
    print(
      `  after ${_longSuspendMs / 1000} s suspended (not in the goal's rounds, which resume at once): resume ${
        seconds(resumeAfterLongSuspend)
      }; this host returns freed memory to its hypervisor, so QEMU's load then faults fresh pages in`,
    );
  }
  print(`${"suspend (4 GiB configured)".padEnd(30)} ${seconds(suspendSeconds).padStart(8)}  (goal ≤ 3 s)`);
  if (guestHeldBytes.length > 0) {
    ratios.push({ label: "state file / guest held", value: median(stateBytes) / median(guestHeldBytes) });
  }
  const over = (values: number[]) => values.length ? (median(stateBytes) / median(values)).toFixed(2) : "-";
  print(
    `  state file ${stateBytes.map(mib).join(", ")}; the guest held (RAM − MemFree) ${
      guestHeldBytes.map(mib).join(", ") || "-"
    }: ratio ${over(guestHeldBytes)}x (goal ≤ 1.10x); against MemTotal − MemFree (${
      guestUsedBytes.map(mib).join(", ") || "-"
    }, which leaves out the kernel's reservations): ${over(guestUsedBytes)}x`,
  );
  if (firmwareReady.length > 0) {
    // The two ratio goals pull the cold boot apart: the resume's wants it long (≥ 10× the resume), the direct
    // boot's wants the firmware's share of a boot large (the direct boot ≤ 4× what the firmware adds).
    const cold = median(oursReady) / 1000;
    const from = 10 * median(resumeReady) / 1000;
    const to = 4 * (median(firmwareReady) / 1000 - cold);
    print(
      `  both ratio goals hold while the cold boot is within ${from.toFixed(1)}–${to.toFixed(1)} s (10× the resume; ` +
        `4× the firmware's extra ${(to / 4).toFixed(1)} s): it took ${cold.toFixed(1)} s`,
    );
  }
}
print(row(`list (${count} vs ${fewCount} projects)`, listFull, listEmpty));

// The smoke run's checks: each boot round reached a login, and no ratio is empty or infinite.
const problems: string[] = [];
for (
  const [what, values, expected] of [
    ["our boots that reached a login", oursReady, rounds],
    ["floor boots that reached a login", floorReady, rounds],
    ["SLIRP boots that reached a login", slirpReady, smoke ? 0 : Math.ceil(rounds / 2)],
    ["resumes that reached a login", resumeReady, rounds],
    ["firmware boots that reached a login", firmwareReady, keptBoot ? rounds : 0],
  ] as const
) {
  if (values.length !== expected || !values.every((v) => Number.isFinite(v) && v > 0)) {
    problems.push(`${what}: ${values.length} of ${expected}`);
  }
}
for (const { label, value } of ratios) {
  if (!Number.isFinite(value) || value <= 0) problems.push(`ratio of ${label.trim()}: ${value}`);
}
if (problems.length > 0) {
  log(`bench: FAILED: ${problems.join("; ")}`);
  Deno.exit(1);
}
