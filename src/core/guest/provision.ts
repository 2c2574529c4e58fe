/**
 * Provisioning: a script that rebuilds what a backup does not keep (tools,
 * packages), run in the guest as `dev` with `bash -s`, its output streamed.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { requireRunningGuest } from "./guest_access.ts";
import { runTool } from "../store/process.ts";
import { sshArguments } from "./ssh.ts";
import type { Store } from "../store/store.ts";

/** The provision script's default place: `~/.config/virtdev/projects/<p>/provision`. */
export function defaultProvisionPath(config: Pick<Config, "configDir">, project: string): string {
  return join(config.configDir, "projects", project, "provision");
}

/** Whether `path` is a readable regular file. */
export async function isReadableFile(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) return false;
    (await Deno.open(path, { read: true })).close();
    return true;
  } catch (error) {
    // Not permitted is not "missing": the message must say so.
    if (error instanceof Deno.errors.NotCapable) throw error;
    return false;
  }
}

/**
 * Runs the script at `path` in project `name`'s guest.
 *
 * @throws {VirtdevError} with `failureCode`, naming the script and its
 *   exit code, when it fails.
 */
export async function runProvision(
  store: Store,
  name: string,
  path: string,
  options: {
    readonly config: Pick<Config, "sshKey">;
    readonly failureCode: number;
    readonly onOutput: (text: string) => void;
  },
): Promise<void> {
  const { target } = await requireRunningGuest(store, name, {
    config: options.config,
    notRunningCode: options.failureCode,
  });
  const script = await Deno.readFile(path);
  const result = await runTool("ssh", sshArguments(target, ["bash", "-s"]), {
    stdin: script,
    allowFailure: true,
    onOutput: options.onOutput,
    // The output is shown as it comes; only the end is kept.
    maxCapture: 64 * 1024,
  });
  if (result.code !== 0) {
    throw new VirtdevError(`The provision script ${path} failed with exit ${result.code}.`, {
      exitCode: options.failureCode,
    });
  }
}
