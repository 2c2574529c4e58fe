/**
 * Whether a project's VM is running. This is the one place that decides it;
 * everything else asks here.
 *
 * @module
 */
import { pathExists, type Store } from "./store.ts";

/** The run state of a project VM. */
export type RunState = "running" | "stopped";

/**
 * The run state of project `name`. Until a supervisor is asked, a project
 * counts as running exactly when its runtime port file exists.
 */
export async function projectRunState(store: Store, name: string): Promise<RunState> {
  return await pathExists(store.project(name).port) ? "running" : "stopped";
}
