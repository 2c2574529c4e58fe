/**
 * Whether KVM can run a guest here, not only whether `/dev/kvm` opens:
 * some hosts (nested virtualisation without MSR support) give a device on
 * which QEMU aborts at the first vCPU reset ("failed to set MSR 0x10a").
 * One short QEMU run answers it; the answer is cached for this boot of the
 * host, so that `start` pays for it once.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { runTool } from "../store/process.ts";
import { readProcFile } from "../store/proc_file.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";

/** What the probe found. */
export interface KvmProbe {
  /** Whether QEMU ran a vCPU under KVM. */
  readonly usable: boolean;
  /** Why not, in one sentence, when it is not. */
  readonly reason?: string;
  /** Whether the answer came from this boot's cache. */
  readonly cached: boolean;
}

/** How long a KVM guest must stay up to count as running. */
const _aliveMs = 700;
const _bootIdFile = "/proc/sys/kernel/random/boot_id";

/**
 * Probes KVM, or returns this host boot's cached answer from
 * `cacheDir/kvm-probe.json`. `fresh` skips the cache.
 */
export async function probeKvm(
  cacheDir: string,
  options: { readonly fresh?: boolean; readonly qemu?: string } = {},
): Promise<KvmProbe> {
  const cacheFile = join(cacheDir, "kvm-probe.json");
  const bootId = (await readProcFile(_bootIdFile))?.trim() || undefined;
  if (!options.fresh && bootId !== undefined) {
    const cached = await _readCache(cacheFile, bootId);
    if (cached) return cached;
  }
  const probe = await _probe(options.qemu ?? "qemu-system-x86_64");
  if (bootId !== undefined) {
    await Deno.mkdir(cacheDir, { recursive: true, mode: 0o700 }).catch(() => {});
    const record = { bootId, usable: probe.usable, ...(probe.reason ? { reason: probe.reason } : {}) };
    await writeFileAtomic(cacheFile, `${JSON.stringify(record)}\n`).catch(() => {});
  }
  return probe;
}

async function _readCache(file: string, bootId: string): Promise<KvmProbe | undefined> {
  try {
    const record = JSON.parse(await Deno.readTextFile(file));
    if (record?.bootId !== bootId || typeof record.usable !== "boolean") return undefined;
    return {
      usable: record.usable,
      ...(typeof record.reason === "string" ? { reason: record.reason } : {}),
      cached: true,
    };
  } catch {
    return undefined;
  }
}

async function _probe(qemu: string): Promise<KvmProbe> {
  // test(1) asks access(2) for this user; Deno grants a device only with --allow-all.
  const present = await runTool("test", ["-e", "/dev/kvm"], { allowFailure: true });
  if (present.code !== 0) {
    return {
      usable: false,
      reason: "/dev/kvm does not exist (no KVM module, or no hardware virtualisation).",
      cached: false,
    };
  }
  const access = await runTool("test", ["-r", "/dev/kvm", "-a", "-w", "/dev/kvm"], { allowFailure: true });
  if (access.code !== 0) {
    return { usable: false, reason: "this user may not open /dev/kvm (not in the kvm group?).", cached: false };
  }
  // No firmware, disk or display: SeaBIOS runs on one vCPU and finds nothing
  // to boot. A QEMU still running after _aliveMs has run its vCPU.
  const run = await runTool(qemu, [
    "-accel",
    "kvm",
    "-machine",
    "q35",
    "-cpu",
    "host",
    "-m",
    "32",
    "-nodefaults",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "none",
    "-no-reboot",
  ], { allowFailure: true, timeoutMs: _aliveMs, maxCapture: 4096 });
  if (run.timedOut) return { usable: true, cached: false };
  const detail = stripTerminalControls(run.stderr).trim().split("\n").filter((line) => line.trim()).pop() ??
    `exit ${run.code}`;
  return { usable: false, reason: `QEMU cannot run a guest under KVM here: ${detail}`, cached: false };
}
