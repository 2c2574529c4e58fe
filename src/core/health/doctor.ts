/**
 * `doctor`: whether this host can run virtdev, and what crashed or
 * interrupted work left in the store. Each finding says what to do; only
 * leftovers are repaired, and only when asked.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { type Config, type Environment, resolveFirmware } from "../store/config.ts";
import { ExitCode, ToolError, VirtdevError } from "../store/errors.ts";
import { describeGeneration, readGeneration } from "../store/generation.ts";
import { runTool } from "../store/process.ts";
import { pathExists, type Store } from "../store/store.ts";
import { minimumRsync, parseRsyncVersion, rsyncInstallHint, versionAtLeast } from "../guest/rsync.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";
import { probeKvm } from "../vm/kvm_probe.ts";
import { endOrphanHelpers, findOrphanHelpers, type OrphanHelper } from "../vm/orphan_helpers.ts";
import { clearRuntime, inspectVm } from "../vm/runtime_state.ts";
import { passtInstallHint } from "../vm/network.ts";
import { qemuInstallHint } from "../vm/supervisor.ts";
import { recoverInterruptedDetach, removeAbandonedWork } from "../projects/project.ts";
import { recoverReseal } from "../base/reseal.ts";

/** How a check came out: `fail` makes doctor exit 1; `warn` works, with a cost. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of the report. */
export interface Check {
  /** A stable name, for `--json` readers. */
  readonly id: string;
  /** The outcome. */
  readonly status: CheckStatus;
  /** What was found, in one sentence. */
  readonly summary: string;
  /** What to do about it, when it is not ok. */
  readonly action?: string;
  /** Set when `--fix` repaired it. */
  readonly fixed?: boolean;
}

/** A program virtdev runs, and how to get it. */
interface _Tool {
  readonly program: string;
  readonly versionArgs: readonly string[];
  readonly hint: string;
  /** The program prints no version: report it as installed. */
  readonly noVersion?: boolean;
  /** A missing optional tool is a warning. */
  readonly optional?: string;
}

const _tools: readonly _Tool[] = [
  { program: "qemu-system-x86_64", versionArgs: ["--version"], hint: qemuInstallHint },
  {
    program: "qemu-img",
    versionArgs: ["--version"],
    hint: "Install qemu-img: 'pacman -S qemu-img' (Arch) or 'apt install qemu-utils' (Debian).",
  },
  {
    program: "ssh",
    versionArgs: ["-V"],
    hint: "Install OpenSSH: 'pacman -S openssh' (Arch) or 'apt install openssh-client' (Debian).",
  },
  // ssh-keygen has no version option; its usage message proves it is there.
  { program: "ssh-keygen", versionArgs: ["-?"], hint: "Install OpenSSH (it provides ssh-keygen).", noVersion: true },
  { program: "rsync", versionArgs: ["--version"], hint: rsyncInstallHint },
  {
    program: "ps",
    versionArgs: ["--version"],
    hint: "Install procps: 'pacman -S procps-ng' (Arch) or 'apt install procps' (Debian).",
  },
  {
    program: "passt",
    versionArgs: ["--version"],
    hint: `${passtInstallHint} Without it every zone but none refuses to start: nothing else enforces a zone.`,
  },
];

/**
 * Runs every check; with `fix`, repairs the leftovers it finds (under the
 * store lock, which the caller holds).
 */
export async function runDoctor(
  store: Store,
  config: Config,
  options: { readonly env: Environment; readonly fix?: boolean },
): Promise<Check[]> {
  const checks: Check[] = [];
  checks.push(await _checkKvm(config));
  checks.push(_checkFirmware(config));
  for (const tool of _tools) checks.push(await _checkTool(tool));
  checks.push(...await _checkSupervisor(options.env));
  checks.push(await _checkKey(config));
  checks.push(await _checkBase(store));
  checks.push(...await _checkLeftovers(store, options.fix ?? false));
  return checks;
}

async function _checkKvm(config: Config): Promise<Check> {
  if (config.accel === "tcg") {
    return { id: "kvm", status: "ok", summary: "VIRTDEV_ACCEL=tcg: VMs run under TCG (software emulation)." };
  }
  let firmwareCode: string;
  try {
    firmwareCode = resolveFirmware(config).code;
  } catch (error) {
    // No firmware: its own check says so.
    if (error instanceof VirtdevError) {
      return { id: "kvm", status: "warn", summary: "KVM not probed: no UEFI firmware to run under it." };
    }
    throw error;
  }
  const probe = await probeKvm(config.cache, { firmwareCode, fresh: true }).catch((error) => {
    // QEMU missing: its own check says so.
    if (error instanceof VirtdevError) return undefined;
    throw error;
  });
  if (probe === undefined) return { id: "kvm", status: "warn", summary: "KVM not probed: QEMU cannot be run." };
  if (probe.usable) return { id: "kvm", status: "ok", summary: "KVM is usable: it runs the UEFI firmware." };
  if (config.accel === "kvm") {
    return {
      id: "kvm",
      status: "fail",
      summary: `VIRTDEV_ACCEL=kvm, but KVM is not usable: ${probe.reason}`,
      action: "Unset VIRTDEV_ACCEL to fall back to TCG, or enable virtualisation for this host.",
    };
  }
  return {
    id: "kvm",
    status: "warn",
    summary: `KVM is not usable, so TCG (software emulation) will be used: ${probe.reason}`,
    action: "Enable hardware virtualisation (VT-x/AMD-V, or nested virtualisation for a VM host) for fast VMs.",
  };
}

function _checkFirmware(config: Config): Check {
  try {
    const firmware = resolveFirmware(config);
    return { id: "firmware", status: "ok", summary: `UEFI firmware: ${firmware.code}.` };
  } catch (error) {
    if (!(error instanceof VirtdevError)) throw error;
    return { id: "firmware", status: "fail", summary: error.message, action: error.hints.join(" ") };
  }
}

async function _checkTool(tool: _Tool): Promise<Check> {
  const id = `tool:${tool.program}`;
  let result;
  try {
    result = await runTool(tool.program, tool.versionArgs, { allowFailure: true, maxCapture: 4096 });
  } catch (error) {
    if (!(error instanceof VirtdevError)) throw error;
    return {
      id,
      status: tool.optional ? "warn" : "fail",
      summary: `${tool.program} is not installed${tool.optional ? `: ${tool.optional}` : "."}`,
      action: tool.hint,
    };
  }
  const version = tool.noVersion ? "installed" : _firstLine(`${result.stdout}\n${result.stderr}`);
  if (tool.program === "rsync") {
    const parsed = parseRsyncVersion(result.stdout);
    if (parsed === undefined || !versionAtLeast(parsed, minimumRsync)) {
      return {
        id,
        status: "fail",
        summary: `rsync is too old for copies from a guest (${version}); virtdev needs ${minimumRsync.join(".")}.`,
        action: rsyncInstallHint,
      };
    }
  }
  return { id, status: "ok", summary: `${tool.program}: ${version}` };
}

function _firstLine(text: string): string {
  const line = stripTerminalControls(text).split("\n").map((part) => part.trim()).find((part) => part !== "");
  return (line ?? "no version").slice(0, 120);
}

async function _checkSupervisor(env: Environment): Promise<Check[]> {
  if (!env.XDG_RUNTIME_DIR) {
    return [{
      id: "supervisor",
      status: "ok",
      summary: "No systemd user manager (XDG_RUNTIME_DIR unset): VMs run under virtdev's own supervisor.",
    }];
  }
  const answer = await runTool("systemctl", ["--user", "show-environment"], { allowFailure: true }).catch(() =>
    undefined
  );
  if (answer?.code !== 0) {
    return [{
      id: "supervisor",
      status: "ok",
      summary: "No systemd user manager answers: VMs run under virtdev's own supervisor.",
    }];
  }
  const checks: Check[] = [{
    id: "supervisor",
    status: "ok",
    summary: "systemd user manager: VMs run as transient user units.",
  }];
  if (env.USER) {
    const linger = await runTool("loginctl", ["show-user", env.USER, "--property=Linger", "--value"], {
      allowFailure: true,
    }).catch(() => undefined);
    if (linger !== undefined && linger.stdout.trim() !== "yes") {
      checks.push({
        id: "linger",
        status: "warn",
        summary: `Lingering is off for ${env.USER}: running VMs stop when you log out.`,
        action: `sudo loginctl enable-linger ${env.USER}`,
      });
    } else if (linger !== undefined) {
      checks.push({ id: "linger", status: "ok", summary: `Lingering is on for ${env.USER}.` });
    }
  }
  return checks;
}

async function _checkKey(config: Config): Promise<Check> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(config.sshKey);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return {
      id: "key",
      status: "warn",
      summary: `No SSH key yet at ${config.sshKey}.`,
      action: "Run 'virtdev key' (install and start also make it).",
    };
  }
  const mode = (info.mode ?? 0) & 0o777;
  if (!info.isFile || mode & 0o077) {
    return {
      id: "key",
      status: "fail",
      summary: `The SSH key ${config.sshKey} is ${info.isFile ? `mode ${mode.toString(8)}` : "not a file"}.`,
      action: `chmod 600 ${config.sshKey}`,
    };
  }
  return { id: "key", status: "ok", summary: `SSH key ${config.sshKey} (mode 600).` };
}

async function _checkBase(store: Store): Promise<Check> {
  if (!await pathExists(store.base.dir)) {
    return {
      id: "base",
      status: "warn",
      summary: "No sealed base yet.",
      action: "Install one with 'virtdev install --image <cloud image>' and seal it with 'virtdev seal'.",
    };
  }
  try {
    const generation = await readGeneration(store.base.generation);
    return { id: "base", status: "ok", summary: `Base sealed, ${describeGeneration(generation)}.` };
  } catch (error) {
    if (!(error instanceof VirtdevError)) throw error;
    return { id: "base", status: "fail", summary: error.message, action: error.hints.join(" ") };
  }
}

async function _checkLeftovers(store: Store, fix: boolean): Promise<Check[]> {
  const checks: Check[] = [];
  const found = (id: string, summary: string, action: string, fixed: boolean): Check => ({
    id,
    status: fixed ? "ok" : "fail",
    summary,
    action: fixed ? undefined : action,
    ...(fixed ? { fixed } : {}),
  });

  if (await pathExists(store.resealJournal) || await pathExists(join(store.root, "system.old"))) {
    const outcome = fix ? await recoverReseal(store) : undefined;
    checks.push(
      found(
        "leftover:reseal",
        outcome ? `An interrupted reseal was ${outcome}.` : "A reseal was interrupted.",
        "Run 'virtdev doctor --fix' (or any start or maintain) to finish or roll it back.",
        outcome !== undefined,
      ),
    );
  }
  const sealing = join(store.root, "system.sealing");
  if (await pathExists(sealing)) {
    if (fix) await Deno.remove(sealing, { recursive: true });
    checks.push(
      found(
        "leftover:seal",
        `An interrupted seal left ${sealing}${fix ? "; removed it" : ""}.`,
        "Run 'virtdev doctor --fix' to remove it, then seal again if the base is missing.",
        fix,
      ),
    );
  }
  const halfMade: string[] = [];
  try {
    for await (const entry of Deno.readDir(store.projectsDir)) {
      if (/^\.(create|destroy)-/.test(entry.name)) halfMade.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (halfMade.length > 0) {
    if (fix) await removeAbandonedWork(store);
    checks.push(
      found(
        "leftover:projects",
        `Interrupted create or destroy left ${halfMade.sort().join(", ")}${fix ? "; removed" : ""}.`,
        "Run 'virtdev doctor --fix' to remove them.",
        fix,
      ),
    );
  }
  for (const name of await store.listProjects()) {
    const paths = store.project(name);
    const detachLeft = await pathExists(`${paths.systemImage}.bak`) || await pathExists(`${paths.homeImage}.bak`) ||
      await pathExists(`${paths.systemImage}.detach`) || await pathExists(`${paths.homeImage}.detach`);
    if (detachLeft) {
      const outcome = fix ? await recoverInterruptedDetach(paths) : undefined;
      checks.push(
        found(
          `leftover:detach:${name}`,
          outcome ? `An interrupted detach of ${name} was ${outcome}.` : `A detach of ${name} was interrupted.`,
          "Run 'virtdev doctor --fix' to finish or roll it back.",
          outcome !== undefined,
        ),
      );
    }
    const vm = await inspectVm(paths);
    if (vm.state === "stopped" && vm.stale) {
      if (fix) await clearRuntime(paths);
      checks.push(
        found(
          `leftover:runtime:${name}`,
          `${name}'s VM is gone but left its runtime files (a crash or kill -9)${fix ? "; removed them" : ""}.`,
          "Run 'virtdev doctor --fix' to remove them.",
          fix,
        ),
      );
    }
  }
  checks.push(...await _checkOrphans(store, fix));
  const legacy = await store.listLegacyProjects();
  if (legacy.length > 0) {
    checks.push({
      id: "legacy-names",
      status: "warn",
      summary: `Projects under names the original virtdev allowed and this one does not: ${legacy.join(", ")}.`,
      action: "Rename each with 'virtdev move -- NAME NEW-NAME' to start it again; stop and destroy work as they are.",
    });
  }
  for (const name of [...await store.listProjects(), ...legacy]) {
    if ((await inspectVm(store.project(name))).foreign) {
      checks.push({
        id: `foreign:${name}`,
        status: "warn",
        summary: `${name} runs in a QEMU that virtdev did not start (the original virtdev, or by hand).`,
        action: `'virtdev stop ${name}' ends it; then 'virtdev start ${name}' runs it under virtdev.`,
      });
    }
  }
  const maintenanceVm = store.maintenanceVm();
  if (await pathExists(store.maintenance.dir) && (await inspectVm(maintenanceVm)).state === "stopped") {
    checks.push({
      id: "leftover:maintenance",
      status: "warn",
      summary: `An ended maintain session left ${store.maintenance.dir}.`,
      action: "The next 'virtdev maintain' removes it; the base is unchanged.",
    });
  }
  if (checks.length === 0) {
    checks.push({ id: "leftovers", status: "ok", summary: "No leftovers of crashed or interrupted work." });
  }
  return checks;
}

/**
 * Helpers (passt, the egress filter) whose host agent died. Those of a VM
 * that is gone serve nobody and are ended by --fix; those of a VM that
 * still runs carry its network, so its stop ends them.
 */
async function _checkOrphans(store: Store, fix: boolean): Promise<Check[]> {
  const checks: Check[] = [];
  const byProject = new Map<string, OrphanHelper[]>();
  let orphans: OrphanHelper[];
  try {
    orphans = await findOrphanHelpers(store);
  } catch (error) {
    // Without ps there is no process table to read; the tools check names ps already.
    if (error instanceof ToolError && error.exitCode === ExitCode.toolMissing) return checks;
    throw error;
  }
  for (const orphan of orphans) {
    byProject.set(orphan.project, [...byProject.get(orphan.project) ?? [], orphan]);
  }
  for (const [project, orphans] of [...byProject].sort(([a], [b]) => a.localeCompare(b))) {
    const what = orphans.map((orphan) => `${orphan.kind} (PID ${orphan.pid})`).join(", ");
    const running = (await inspectVm(store.project(project))).pid !== undefined;
    if (running) {
      checks.push({
        id: `orphan:${project}`,
        status: "warn",
        summary: `${project}'s host agent is gone; its VM still runs with ${what}, and its console is not logged.`,
        action: `Restart it when convenient: virtdev stop ${project} && virtdev start ${project}`,
      });
      continue;
    }
    if (fix) await endOrphanHelpers(orphans);
    checks.push({
      id: `orphan:${project}`,
      status: fix ? "ok" : "fail",
      summary: `${project}'s VM is gone, but its ${what} still run${orphans.length === 1 ? "s" : ""}${
        fix ? "; ended" : ""
      }.`,
      ...(fix ? { fixed: true } : { action: "Run 'virtdev doctor --fix' to end them." }),
    });
  }
  return checks;
}
