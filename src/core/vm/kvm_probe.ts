/**
 * Whether KVM can run the firmware virtdev boots, not only whether
 * `/dev/kvm` opens. These hosts fail in two ways: QEMU aborts at the first
 * vCPU reset ("failed to set MSR 0x10a"), or KVM runs SeaBIOS but stops
 * OVMF within a few hundred milliseconds ("KVM internal error", run state
 * `internal-error`, QEMU left idle). So the probe runs the configured UEFI
 * firmware under KVM, no disk, and asks QMP after a second whether the
 * vCPU still runs and has left the reset vector. The answer is cached for
 * this boot of the host, this QEMU and this firmware, so that `start` pays
 * for it once.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { exitCodeOf, runTool, spawnTool } from "../store/process.ts";
import { escapeOptionValue } from "./qemu_args.ts";
import { QmpClient, QmpClosedError } from "./qmp.ts";
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

/** How long the firmware must run under KVM before it counts as running. */
const _observeMs = 1000;
/** The longest a probe may take, whatever QEMU does. */
const _probeDeadlineMs = 10_000;
const _bootIdFile = "/proc/sys/kernel/random/boot_id";

/**
 * Probes KVM with the UEFI firmware `firmwareCode`, or returns the cached
 * answer from `cacheDir/kvm-probe.json` for this host boot, QEMU version
 * and firmware. `fresh` skips the cache.
 */
export async function probeKvm(
  cacheDir: string,
  options: { readonly firmwareCode: string; readonly fresh?: boolean; readonly qemu?: string },
): Promise<KvmProbe> {
  const qemu = options.qemu ?? "qemu-system-x86_64";
  const cacheFile = join(cacheDir, "kvm-probe.json");
  const bootId = (await readProcFile(_bootIdFile))?.trim() || undefined;
  const key = bootId === undefined ? undefined : await _cacheKey(bootId, qemu, options.firmwareCode);
  if (!options.fresh && key !== undefined) {
    const cached = await _readCache(cacheFile, key);
    if (cached) return cached;
  }
  const probe = await _probe(qemu, options.firmwareCode);
  if (key !== undefined) {
    await Deno.mkdir(cacheDir, { recursive: true, mode: 0o700 }).catch(() => {});
    const record = { key, usable: probe.usable, ...(probe.reason ? { reason: probe.reason } : {}) };
    await writeFileAtomic(cacheFile, `${JSON.stringify(record)}\n`).catch(() => {});
  }
  return probe;
}

/** The host boot, QEMU's version line and the firmware file's identity: a change of any asks again. */
async function _cacheKey(bootId: string, qemu: string, firmwareCode: string): Promise<string | undefined> {
  const version = await runTool(qemu, ["--version"], { allowFailure: true, maxCapture: 1024 }).catch(() => undefined);
  if (version === undefined || version.code !== 0) return undefined;
  const firmware = await Deno.stat(firmwareCode).catch(() => undefined);
  if (firmware === undefined) return undefined;
  const qemuVersion = version.stdout.split("\n")[0].trim();
  return [bootId, qemuVersion, firmwareCode, firmware.size, firmware.mtime?.getTime() ?? 0].join("|");
}

async function _readCache(file: string, key: string): Promise<KvmProbe | undefined> {
  try {
    const record = JSON.parse(await Deno.readTextFile(file));
    if (record?.key !== key || typeof record.usable !== "boolean") return undefined;
    return {
      usable: record.usable,
      ...(typeof record.reason === "string" ? { reason: record.reason } : {}),
      cached: true,
    };
  } catch {
    return undefined;
  }
}

async function _probe(qemu: string, firmwareCode: string): Promise<KvmProbe> {
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
  const run = await FirmwareRun.start(qemu, { accel: "kvm", firmwareCode });
  try {
    const observation = await run.observe(_observeMs);
    return { ...kvmVerdict(observation), cached: false };
  } finally {
    await run.close();
  }
}

/** What a short firmware run showed. */
export type FirmwareObservation =
  | { readonly kind: "exited"; readonly code: number; readonly stderr: string }
  | { readonly kind: "alive"; readonly status: string; readonly progressed: boolean; readonly stderr: string };

/** Whether an observation proves that the accelerator runs the firmware, and why not when it does not. */
export function kvmVerdict(observation: FirmwareObservation): { readonly usable: boolean; readonly reason?: string } {
  const detail = _lastLine(observation.stderr);
  if (observation.kind === "exited") {
    return {
      usable: false,
      reason: `QEMU cannot run the firmware under KVM here: ${detail ?? `it exited with ${observation.code}`}.`,
    };
  }
  if (observation.status !== "running") {
    const said = detail ? ` (QEMU: ${detail})` : "";
    return {
      usable: false,
      reason: `KVM stopped the UEFI firmware at once: run state '${observation.status}'${said}.`,
    };
  }
  if (!observation.progressed) {
    return { usable: false, reason: "the UEFI firmware made no progress under KVM (its vCPU is still at reset)." };
  }
  return { usable: true };
}

function _lastLine(text: string): string | undefined {
  // Register and code dumps ("RAX=…", "CS =…", "Code=…", "extra data[0]: …") say nothing to a person.
  const lines = stripTerminalControls(text).split("\n").map((line) => line.trim())
    .filter((line) => line && !/^(extra data\[\d+\]:|Code=|[A-Z][A-Za-z0-9]{1,3} ?=)/.test(line));
  // QEMU's KVM error is a header, register dumps, then a summary: the header and summary say it.
  const internal = lines.find((line) => /KVM internal error/.test(line));
  const last = lines.pop()?.replace(/[.:]+$/, "");
  if (internal && last && last !== internal) return `${internal.replace(/[.:]+$/, "")}, ${last}`;
  return last;
}

/**
 * The UEFI firmware alone in a QEMU (no disk, no network, no display),
 * spoken to by QMP on QEMU's standard streams: the probe's run, also used
 * by tests with `-S` to see that "stopped" is never taken for "running".
 * Every QMP answer is awaited at most until the probe's deadline.
 */
export class FirmwareRun {
  readonly #child: Deno.ChildProcess;
  readonly #qmp: QmpClient | undefined;
  readonly #stderr: Promise<void>;
  /** QEMU's last 8 KiB of stderr, as it arrives. */
  readonly #stderrText: { value: string };
  readonly #exited: Promise<Deno.CommandStatus>;
  #ended: Deno.CommandStatus | undefined;
  readonly #deadline: number;

  private constructor(
    child: Deno.ChildProcess,
    qmp: QmpClient | undefined,
    stderr: { readonly done: Promise<void>; readonly text: { value: string } },
    started: number,
  ) {
    this.#child = child;
    this.#qmp = qmp;
    this.#stderr = stderr.done;
    this.#stderrText = stderr.text;
    this.#exited = child.status.then((status) => this.#ended = status);
    this.#deadline = started + _probeDeadlineMs;
  }

  /** Starts QEMU on `firmwareCode` under `accel`; `extraArgs` (e.g. `-S`) go last. */
  static async start(
    qemu: string,
    options: {
      readonly accel: "kvm" | "tcg";
      readonly firmwareCode: string;
      readonly extraArgs?: readonly string[];
    },
  ): Promise<FirmwareRun> {
    const started = Date.now();
    const child = spawnTool(qemu, [
      "-machine",
      `q35,accel=${options.accel}`,
      "-cpu",
      options.accel === "kvm" ? "host" : "max",
      "-m",
      "64",
      "-nodefaults",
      "-display",
      "none",
      "-serial",
      "none",
      "-monitor",
      "none",
      "-qmp",
      "stdio",
      "-drive",
      `if=pflash,format=raw,readonly=on,file=${escapeOptionValue(options.firmwareCode)}`,
      "-no-reboot",
      ...(options.extraArgs ?? []),
    ], { stdin: true });
    const text = { value: "" };
    const done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        text.value = (text.value + decoder.decode(chunk, { stream: true })).slice(-8192);
      }
    })();
    const writer = child.stdin.getWriter();
    const channel = {
      readable: child.stdout,
      write: (bytes: Uint8Array) => writer.write(bytes),
      close: () => void writer.close().catch(() => {}),
    };
    // A QEMU that exits at once never greets: the run is then seen as exited.
    const qmp = await _until(started + _probeDeadlineMs, QmpClient.over(channel)).catch((error) => {
      if (error instanceof QmpClosedError) return undefined;
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      throw error;
    });
    return new FirmwareRun(child, qmp, { done, text }, started);
  }

  /** The run state QMP reports, e.g. `running`, `prelaunch`, `internal-error`; `undefined` once QEMU has exited. */
  async status(): Promise<string | undefined> {
    const reply = await this.#execute("query-status") as { status?: unknown } | undefined;
    return typeof reply?.status === "string" ? reply.status : undefined;
  }

  /** Runs a QMP command (e.g. `cont`). */
  async execute(command: string): Promise<unknown> {
    return await this.#execute(command);
  }

  /** Whether the vCPU has left the reset vector (CS base 0xffff0000, IP 0xfff0). */
  async progressed(): Promise<boolean> {
    const text = String(await this.#execute("human-monitor-command", { "command-line": "info registers" }) ?? "");
    const cs = /^CS =([0-9a-f]{4}) ([0-9a-f]+)/im.exec(text);
    const ip = /\b[RE]IP=([0-9a-f]+)/i.exec(text);
    if (!cs || !ip) return false;
    const atReset = BigInt(`0x${cs[2]}`) === 0xffff0000n && (BigInt(`0x${ip[1]}`) & 0xffffn) === 0xfff0n;
    return !atReset;
  }

  /** Lets the firmware run until `ms` after its start, then says what it did. */
  async observe(ms: number): Promise<FirmwareObservation> {
    const wait = Math.max(0, this.#deadline - _probeDeadlineMs + ms - Date.now());
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#exited, new Promise((resolve) => timer = setTimeout(resolve, wait))]);
    clearTimeout(timer);
    const status = this.#ended ? undefined : await this.status();
    if (status === undefined) {
      const ended = await this.#exited;
      await this.#stderr;
      return { kind: "exited", code: exitCodeOf(ended), stderr: this.#stderrText.value };
    }
    const progressed = await this.progressed();
    // QEMU prints its KVM error as the vCPU stops: a moment for it to arrive.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { kind: "alive", status, progressed, stderr: this.#stderrText.value };
  }

  /** Ends QEMU (SIGKILL) and waits for it. */
  async close(): Promise<void> {
    if (this.#ended === undefined) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    this.#qmp?.close();
    await this.#exited;
    await this.#stderr;
  }

  /** A QMP command's answer; `undefined` once QEMU has exited. */
  async #execute(command: string, args?: Readonly<Record<string, unknown>>): Promise<unknown> {
    if (this.#qmp === undefined || this.#ended) return undefined;
    try {
      return await _until(this.#deadline, this.#qmp.execute(command, args));
    } catch (error) {
      if (error instanceof QmpClosedError) return undefined;
      throw error;
    }
  }
}

/** `work`, or an error once `deadline` has passed. */
async function _until<T>(deadline: number, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("QEMU did not answer the KVM probe in time.")), deadline - Date.now());
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
