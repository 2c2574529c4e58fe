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
import { suspendedError } from "../vm/suspended_error.ts";

/**
 * Refuses to go on while the project's VM runs, or while it is suspended
 * (exit 76): its saved memory belongs to the disks as they are, unless
 * `suspended` is `allow` (the operation removes the state with the disks).
 *
 * @param options.what what is refused, for the suspended case (`resize it`).
 */
export async function requireStopped(
  store: Store,
  name: string,
  exitCode: number,
  options: { readonly what?: string; readonly suspended?: "refuse" | "allow" } = {},
): Promise<void> {
  const state = await projectRunState(store, name);
  if (state === "stopped") return;
  if (state === "suspended") {
    if (options.suspended === "allow") return;
    throw suspendedError(name, options.what ?? "change its disks");
  }
  throw new VirtdevError(`Project ${name} is running.`, {
    exitCode,
    hint: `Stop it first: virtdev stop ${name}`,
  });
}
