import { runningNet } from "../core/vm/net_control.ts";
import { readProjectZone } from "../core/vm/egress/zone_settings.ts";
import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { requireVmPaths } from "../core/projects/project_lookup.ts";
import { describeRunState, inspectVm } from "../core/vm/runtime_state.ts";
import { readHaltRecord } from "../core/vm/vm_halt.ts";
import { readSuspendRecord } from "../core/vm/suspend_state.ts";
import { formatSize } from "../core/store/size.ts";
import { reportForwards } from "../core/vm/forward_control.ts";
import { effectiveVmSize, readProjectSettings } from "../core/projects/settings.ts";
import type { Config } from "../core/store/config.ts";
import { maintenanceVmName, type ProjectPaths } from "../core/store/store.ts";

async function _size(paths: ProjectPaths, config: Config): Promise<{ cpus: number; memoryMiB: number }> {
  const size = effectiveVmSize(config, await readProjectSettings(paths));
  return { cpus: size.vmCpus, memoryMiB: size.vmMemoryMiB };
}

/** `virtdev status [--json] <project>`: the VM's run state. */
export const statusCommand = defineCommand("status", {
  brief: `Print a project VM's state: running, starting, stopping, degraded, paused, suspended or stopped.`,
  description:
    `'running (started elsewhere)': a QEMU that virtdev did not start (the original virtdev, or one by hand) has the project's disks open. 'starting' means QEMU runs but the guest has not yet said that SSH is up; 'running' means it has; 'degraded' that its network (passt) has died, so it cannot be reached until it is restarted; 'paused (why)' that QEMU stopped running the guest (a failed disk write, a pause through the monitor); 'suspended (when, size)' that its memory is saved in the project ('virtdev suspend') and 'virtdev start' resumes it. 'stopped (why, when)' tells that QEMU ended the last boot itself (a kernel panic, a KVM internal error). With --json, also the PID, port, supervisor, network, forwards, and how it booted (boot: direct or firmware).`,
  takesProject: true,
  options: {
    json: flagOption(["--json"], `Print a JSON object.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, json }, { store, ui, config }) {
    const paths = await requireVmPaths(store, project, { legacy: true });
    // Quick: a foreign VM is looked for where it left the original tool's signs.
    const status = await inspectVm(paths, { foreign: "hints" });
    // A boot that QEMU ended (a panic, a KVM error) is told until the next start.
    const lastHalt = status.state === "stopped" ? await readHaltRecord(paths) : undefined;
    const saved = status.state === "suspended" ? await readSuspendRecord(paths) : undefined;
    if (!json) {
      ui.result(
        lastHalt
          ? `stopped (${lastHalt.reason}, ${lastHalt.at.slice(0, 19).replace("T", " ")} UTC)`
          : saved
          ? `suspended (${saved.savedAt.slice(0, 19).replace("T", " ")} UTC, ${
            formatSize(saved.memoryBytes)
          } of memory)`
          : describeRunState(status),
      );
      return;
    }
    ui.result(JSON.stringify({
      project,
      state: status.state,
      startedElsewhere: status.foreign ?? false,
      hostAgent: status.pid === undefined ? null : !status.agentGone,
      ephemeral: status.record?.ephemeral ?? false,
      ...await _size(paths, config),
      pid: status.pid ?? null,
      port: status.record?.port ?? null,
      supervisor: status.record?.supervisor ?? null,
      startedAt: status.record?.startedAt ?? null,
      network: status.record?.network ?? null,
      boot: status.record?.qemu ? (status.record.qemu.args.includes("-kernel") ? "direct" : "firmware") : null,
      net: await _net(paths),
      forwards: await reportForwards(paths),
      halt: status.halt ?? lastHalt ?? null,
      suspended: saved ? { savedAt: saved.savedAt, memoryBytes: saved.memoryBytes } : null,
      template: await _template(paths),
    }));
  },
});

/** The zone kept and, while the VM runs behind the filter, the one in force and what it blocked. */
async function _net(
  paths: ProjectPaths,
): Promise<{ zone: string | null; running: string | null; blocked: number | null }> {
  const running = await runningNet(paths);
  const zone = paths.name === maintenanceVmName ? null : await readProjectZone(paths).catch(() => null);
  return { zone, running: running?.zone ?? null, blocked: running?.report ? running.blocked : null };
}

/** The warm image disposable runs resume from, if the project has one. */
async function _template(paths: ProjectPaths): Promise<{ savedAt: string; memoryBytes: number } | null> {
  const record = await readSuspendRecord(paths, { kind: "template" });
  return record ? { savedAt: record.savedAt, memoryBytes: record.memoryBytes } : null;
}
