/**
 * Changing what a project's guest may reach: the zone and the allowlist
 * are kept in the project, and a running VM behind the egress filter gets
 * the new policy at once (its policy file is rewritten, the filter is told
 * with SIGHUP after checking that the PID is that filter, and the change
 * is awaited in its report). A VM on SLIRP (zone `none`) takes a new zone
 * at its next start.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { findProcesses } from "../store/processes.ts";
import type { ProjectPaths } from "../store/store.ts";
import { netFilterArgument } from "./host_agent_argument.ts";
import { readAgentState } from "./agent_state.ts";
import { inspectVm } from "./runtime_state.ts";
import {
  type FilterReport,
  policyFileOf,
  readFilterReport,
  readPolicyFile,
  writePolicyFile,
} from "./egress/policy_file.ts";
import { resolvePolicy } from "./egress/zone_settings.ts";

/** Exit codes of live network changes. */
export const NetExit = { filterGone: 9 } as const;

/** How a change reached the VM. */
export type Applied = "stopped" | "now" | "next-start";

/** What the running VM enforces, when its egress filter runs. */
export interface RunningNet {
  readonly zone: string;
  readonly blocked: number;
  readonly report?: FilterReport;
}

/** The running VM's zone and blocked count, or `undefined` when it has no filter running. */
export async function runningNet(paths: ProjectPaths): Promise<RunningNet | undefined> {
  const vm = await inspectVm(paths);
  if (vm.state === "stopped" || vm.state === "suspended" || !vm.record?.network) return undefined;
  if (!vm.record.filter) return { zone: vm.record.network.egress, blocked: 0 };
  const report = await readFilterReport(vm.record.filter.netDir);
  return { zone: report?.zone ?? vm.record.network.egress, blocked: report?.blocked ?? 0, report };
}

/**
 * Applies the project's kept zone (or `zone`, for this boot) and allowlist
 * to its running VM.
 *
 * @throws {VirtdevError} exit 2 or 64 for a zone or allowlist that does
 *   not read (nothing is changed then); exit 9 when the filter is gone.
 */
export async function applyNet(
  paths: ProjectPaths,
  options: { readonly configDir: string; readonly zone?: string; readonly dnsUpstream?: readonly string[] },
): Promise<Applied> {
  const vm = await inspectVm(paths);
  if (vm.state === "stopped" || vm.state === "suspended" || !vm.record) return "stopped";
  const filter = vm.record.filter;
  if (!filter) return "next-start";
  const now = await readPolicyFile(filter.netDir).catch(() => undefined);
  const zone = options.zone ?? now?.file.name ?? vm.record.network?.egress ?? "wan";
  const policy = await resolvePolicy(paths, { configDir: options.configDir, zone });
  const serial = (now?.file.serial ?? 1) + 1;
  await writePolicyFile(
    filter.netDir,
    policyFileOf(policy, { serial, dnsUpstream: options.dnsUpstream ?? now?.file.dnsUpstream }),
  );
  const pid = (await readAgentState(paths))?.filterPid;
  const entry = pid === undefined ? undefined : (await findProcesses([pid])).get(pid);
  if (!entry || !entry.args.includes(netFilterArgument) || !entry.args.includes(` ${filter.netDir} `)) {
    throw new VirtdevError(`The egress filter of ${paths.name} is gone: its guest has no network now.`, {
      exitCode: NetExit.filterGone,
      hint: `The change is kept; restart the VM: virtdev stop ${paths.name} && virtdev start ${paths.name}`,
    });
  }
  await runTool("kill", ["-HUP", String(pid)], { missingHint: "Install procps (it provides kill)." });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (((await readFilterReport(filter.netDir))?.serial ?? 0) >= serial) return "now";
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new VirtdevError(`The egress filter of ${paths.name} did not take the change within 10 s.`, {
    exitCode: NetExit.filterGone,
    hint: `The change is kept; restart the VM: virtdev stop ${paths.name} && virtdev start ${paths.name}`,
  });
}
