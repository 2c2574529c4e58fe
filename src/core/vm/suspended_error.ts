/**
 * The one refusal for a suspended project: every command that would change
 * its disks (or boot them another way) says the same, with the same exit
 * code, and the two ways on.
 *
 * @module
 */
import { ExitCode, VirtdevError } from "../store/errors.ts";

/**
 * `name` is suspended, so `what` (e.g. `resize it`) cannot be done now
 * (exit 76). With `resumeFirst`, the way on is to resume it (the command
 * needs it running) rather than to shut it down.
 */
export function suspendedError(
  name: string,
  what: string,
  options: { readonly resumeFirst?: boolean } = {},
): VirtdevError {
  return new VirtdevError(`Project ${name} is suspended; cannot ${what} while its saved memory belongs to its disks.`, {
    exitCode: ExitCode.suspended,
    hint: [
      options.resumeFirst
        ? `Resume it first: virtdev start ${name} && virtdev wait ${name}`
        : `Resume it and shut it down cleanly: virtdev start ${name} && virtdev wait ${name} && virtdev stop ${name}`,
      `or discard its saved memory (its processes end; the disks keep what was synced at the suspend): virtdev stop ${name}`,
    ],
  });
}

/**
 * Projects are suspended, so `what` (which changes the base their disks
 * stand on, e.g. `maintain the base`) cannot run now (exit 76).
 */
export function suspendedProjectsError(names: readonly string[], what: string): VirtdevError {
  return new VirtdevError(`Projects are suspended: ${names.join(", ")}; cannot ${what} under their saved memory.`, {
    exitCode: ExitCode.suspended,
    hint: [
      `Resume each and shut it down cleanly (virtdev start <p> && virtdev wait <p> && virtdev stop <p>),`,
      `or discard their saved memory: ${names.map((name) => `virtdev stop ${name}`).join("; ")}`,
    ],
  });
}
