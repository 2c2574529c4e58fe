/**
 * What a VM's host agent reports in `run/agent.json` (see `host_agent.ts`),
 * readable without loading the agent.
 *
 * @module
 */
import { type ProjectPaths, readOptionalText } from "../store/store.ts";
import type { ForwardState } from "./forwards.ts";
import type { VmHalt } from "./vm_halt.ts";

/** What the guest has said on its console since this boot began. */
export type Readiness = "pending" | "ready" | "failed";

/** The agent's state, as `run/agent.json` holds it. */
export interface AgentState {
  /** The agent's PID. */
  readonly pid: number;
  /** `launching` until QEMU answers QMP; `failed` when it never did. */
  readonly phase: "launching" | "running" | "failed";
  /** The guest's last word on readiness. */
  readonly readiness: Readiness;
  /** Why the launch failed (QEMU's or passt's own words). */
  readonly error?: string;
  /** For the passt backend: `up`, or `lost` once passt has died (the guest has no network). */
  readonly network?: "up" | "lost";
  /** passt's PID, while it runs. */
  readonly passtPid?: number;
  /** The egress filter's PID while it runs. */
  readonly filterPid?: number;
  /** The project's forwards and how each fares. */
  readonly forwards?: readonly ForwardState[];
  /** When QEMU was spawned (ms since the epoch), for the boot timeline. */
  readonly qemuStartedAt?: number;
  /** Why the guest is not running although QEMU lives (QEMU's run state after a STOP). */
  readonly halt?: VmHalt;
  /** After a resume: whether the guest's clock was set from the host's, and if not, why. */
  readonly clock?: { readonly set: boolean; readonly by?: "helper" | "sudo"; readonly detail?: string };
  /**
   * After a cold boot: whether the agent's login at the ready line came up
   * (its connection is then the boot's shared master), and if not, why.
   */
  readonly login?: { readonly ok: boolean; readonly detail?: string };
}

/** Reads the agent's state, if there is a readable one. */
export async function readAgentState(paths: ProjectPaths): Promise<AgentState | undefined> {
  const text = await readOptionalText(paths.runtime.agent);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as AgentState;
    return typeof value.pid === "number" && typeof value.phase === "string" ? value : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}
