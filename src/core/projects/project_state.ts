/**
 * Whether a project's VM is stopped, for operations that need its disks to
 * themselves. Apart from the lookup, so that commands that only find a
 * project do not load the VM's runtime state.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import type { Store } from "../store/store.ts";
import { projectRunState } from "../vm/runtime_state.ts";

/** Refuses to go on while the project's VM runs. */
export async function requireStopped(store: Store, name: string, exitCode: number): Promise<void> {
  if (await projectRunState(store, name) !== "stopped") {
    throw new VirtdevError(`Project ${name} is running.`, {
      exitCode,
      hint: `Stop it first: virtdev stop ${name}`,
    });
  }
}
