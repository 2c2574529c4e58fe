/**
 * Changing a running VM's forwards from the command line: the kept list is
 * rewritten, the host agent is told (SIGUSR1, after checking that the PID
 * is that agent), and the change is awaited in the agent's report.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { findProcesses } from "../store/processes.ts";
import type { ProjectPaths, Store } from "../store/store.ts";
import { requireProject } from "../projects/project_lookup.ts";
import { hostAgentArgument } from "./host_agent_argument.ts";
import { readAgentState } from "./agent_state.ts";
import { isPortFree } from "./ports.ts";
import { inspectVm } from "./runtime_state.ts";
import {
  describeForward,
  type Forward,
  ForwardExit,
  type ForwardState,
  readForwards,
  writeForwards,
} from "./forwards.ts";

/** How a forward stands, for `forward --list` and `status --json`. */
export interface ForwardReport extends Forward {
  /** The agent's word while the VM runs; `stopped` otherwise. */
  readonly state: ForwardState["state"] | "stopped";
  readonly error?: string;
}

/**
 * The project's forwards and their states.
 */
export async function reportForwards(paths: ProjectPaths): Promise<ForwardReport[]> {
  const kept = await readForwards(paths);
  const vm = await inspectVm(paths);
  if (vm.state === "stopped" || vm.state === "suspended") {
    return kept.map((forward) => ({ ...forward, state: "stopped" }));
  }
  const agent = (await readAgentState(paths))?.forwards ?? [];
  return kept.map((forward) => {
    const live = agent.find((state) => state.host === forward.host && state.guest === forward.guest);
    return live ? { ...forward, state: live.state, error: live.error } : { ...forward, state: "starting" };
  });
}

/**
 * Adds a forward and, while the VM runs, waits until it answers.
 *
 * @throws {VirtdevError} 6 when the host port is already forwarded, 8 when
 *   another program holds it, 9 when the forward cannot be set up.
 */
export async function addForward(store: Store, name: string, forward: Forward): Promise<ForwardReport> {
  const paths = await requireProject(store, name);
  const kept = await readForwards(paths);
  const clash = kept.find((other) => other.host === forward.host);
  if (clash) {
    throw new VirtdevError(`127.0.0.1:${forward.host} is already forwarded (to guest port ${clash.guest}).`, {
      exitCode: ForwardExit.exists,
      hint: `Remove it first: virtdev forward --remove ${name} ${forward.host}`,
    });
  }
  if (!await isPortFree(forward.host)) {
    throw new VirtdevError(`Port ${forward.host} is in use on this host.`, {
      exitCode: ForwardExit.hostPortBusy,
      hint: `Choose another host port: virtdev forward ${name} <HOSTPORT>:${forward.guest}`,
    });
  }
  await writeForwards(paths, [...kept, forward]);
  if (!await _tellAgent(paths)) return { ...forward, state: "stopped" };
  const report = await _awaitForward(paths, (reports) => {
    const mine = reports.find((r) => r.host === forward.host);
    return mine && (mine.state === "up" || mine.state === "failed") ? mine : undefined;
  });
  if (report?.state !== "up") {
    throw new VirtdevError(
      `The forward ${describeForward(forward)} could not be set up${report?.error ? `: ${report.error}` : "."}`,
      {
        exitCode: ForwardExit.failed,
        hint: [
          "It is kept and tried again at every start; remove it with " +
          `'virtdev forward --remove ${name} ${forward.host}'.`,
          `Is the guest ready? virtdev wait ${name}`,
        ],
      },
    );
  }
  return report;
}

/**
 * Removes the forward on host port `host` (and, if given, to `guest`).
 *
 * @throws {VirtdevError} 10 when there is none.
 */
export async function removeForward(
  store: Store,
  name: string,
  spec: { host: number; guest?: number },
): Promise<Forward> {
  const paths = await requireProject(store, name);
  const kept = await readForwards(paths);
  const doomed = kept.find((f) => f.host === spec.host && (spec.guest === undefined || f.guest === spec.guest));
  if (!doomed) {
    throw new VirtdevError(`${name} has no forward on 127.0.0.1:${spec.host}.`, {
      exitCode: ForwardExit.missing,
      hint: `List them with 'virtdev forward --list ${name}'.`,
    });
  }
  await writeForwards(paths, kept.filter((f) => f !== doomed));
  if (await _tellAgent(paths)) {
    await _awaitForward(paths, async () => {
      const agent = (await readAgentState(paths))?.forwards ?? [];
      return agent.some((state) => state.host === doomed.host) ? undefined : true;
    });
  }
  return doomed;
}

/** How long `forward` waits for the agent. */
const _agentTimeoutMs = 30_000;

/** Polls until `done` gives an answer, or the wait ends (then `undefined`). */
async function _awaitForward<T>(
  paths: ProjectPaths,
  done: (reports: ForwardReport[]) => T | undefined | Promise<T | undefined>,
): Promise<T | undefined> {
  const deadline = Date.now() + _agentTimeoutMs;
  while (Date.now() < deadline) {
    const answer = await done(await reportForwards(paths));
    if (answer !== undefined) return answer;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

/**
 * Tells the running VM's host agent that the forwards changed (SIGUSR1),
 * after checking that the PID it gives is that agent.
 *
 * @returns false when no VM runs.
 */
async function _tellAgent(paths: ProjectPaths): Promise<boolean> {
  const vm = await inspectVm(paths);
  if (vm.state === "stopped" || vm.state === "suspended") return false;
  const pid = (await readAgentState(paths))?.pid;
  const entry = pid === undefined ? undefined : (await findProcesses([pid])).get(pid);
  if (!entry || !entry.args.includes(hostAgentArgument) || !entry.args.includes(` ${paths.dir} `)) {
    throw new VirtdevError(`The host agent of ${paths.name} is gone, so its forwards cannot change now.`, {
      exitCode: ForwardExit.failed,
      hint: `The change is kept; restart the VM to apply it: virtdev stop ${paths.name} && virtdev start ${paths.name}`,
    });
  }
  await runTool("kill", ["-USR1", String(pid)], { missingHint: "Install procps (it provides kill)." });
  return true;
}
