/**
 * `transfer`: rsync to or from a running guest over its pinned SSH. Files
 * from the guest arrive with their symlinks munged, so that nothing the
 * guest sends can make the host's rsync write through a link out of the
 * destination; once it is done, a local rsync turns those links back into
 * the links the guest sent, without following any.
 *
 * @module
 */
import { basename, dirname } from "../store/path.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import type { Store } from "../store/store.ts";
import { requireRunningGuest } from "./guest_access.ts";
import { itemizedSymlinks, requireSafeRsync, rsyncInstallHint, unmungeSymlinks } from "./rsync.ts";
import { rsyncRemoteShell, sshDestination } from "./ssh.ts";

/** Exit codes of `transfer` (otherwise rsync's own). */
export const TransferExit = { notRunning: 5, noneRemote: 9, bothRemote: 10 } as const;

/** Which way the files go. */
export type TransferDirection = "to-guest" | "from-guest";

/**
 * The direction of a transfer: exactly one side starts with `:`.
 *
 * @throws {VirtdevError} exit 9 when neither does, 10 when both do.
 */
export function transferDirection(project: string, source: string, destination: string): TransferDirection {
  const remoteSource = source.startsWith(":");
  const remoteDestination = destination.startsWith(":");
  if (remoteSource === remoteDestination) {
    throw new VirtdevError(remoteSource ? "Both sides are in the guest." : "Neither side is in the guest.", {
      exitCode: remoteSource ? TransferExit.bothRemote : TransferExit.noneRemote,
      hint: `Mark exactly one side with ':', e.g. 'virtdev transfer ${project} ./file :file'.`,
    });
  }
  return remoteSource ? "from-guest" : "to-guest";
}

/**
 * Copies `source` to `destination` (one of them `:path` in the guest,
 * relative to /home/dev).
 *
 * @returns rsync's exit code.
 */
export async function transferFiles(
  store: Store,
  name: string,
  options: {
    readonly config: Pick<Config, "sshKey">;
    readonly source: string;
    readonly destination: string;
    /** rsync's messages, as they come (the guest's rsync can write into them). */
    readonly onMessage: (text: string) => void;
  },
): Promise<number> {
  const direction = transferDirection(name, options.source, options.destination);
  const { target } = await requireRunningGuest(store, name, {
    config: options.config,
    notRunningCode: TransferExit.notRunning,
  });
  await requireSafeRsync();
  const remote = (path: string): string => `${sshDestination}:${path.slice(1)}`;
  const fromGuest = direction === "from-guest";
  const result = await runTool("rsync", [
    "--archive",
    // From the guest: links are stored munged while rsync works, and
    // rsync lists every item so they can be found again.
    ...(fromGuest ? ["--munge-links", "--out-format=%i %n"] : []),
    "-e",
    rsyncRemoteShell(target),
    "--",
    fromGuest ? remote(options.source) : options.source,
    fromGuest ? options.destination : remote(options.destination),
  ], {
    allowFailure: true,
    env: { LC_ALL: "C" },
    onOutput: (text, stream) => {
      if (stream === "stderr") options.onMessage(text);
    },
    missingHint: rsyncInstallHint,
  });
  if (fromGuest) await _restoreLinks(options.destination, itemizedSymlinks(result.stdout));
  return result.code;
}

/**
 * Unmunges the links rsync made at `destination`: a directory (the usual
 * case), or the new name of a single item when rsync cannot enter it.
 */
async function _restoreLinks(destination: string, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  const code = await unmungeSymlinks(destination, names);
  // 3: "errors selecting input/output files, dirs": not a directory.
  if (code === 3 && !destination.endsWith("/")) await unmungeSymlinks(dirname(destination), [basename(destination)]);
}
