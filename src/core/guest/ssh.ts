/**
 * How virtdev reaches a guest over SSH: one option set, pinned to the
 * project's own host key, used by `ssh`, `wait` and rsync alike.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { hostKeyAlias } from "./host_key.ts";
import type { ProjectPaths } from "../store/store.ts";

/** The guest user every virtdev guest provides. */
export const guestUser = "dev";

/** Where a project's SSH server is reached, and how it is recognised. */
export interface SshTarget {
  /** The project name. */
  readonly project: string;
  /** The forwarded port on host loopback. */
  readonly port: number;
  /** The user's private key. */
  readonly identity: string;
  /** The project's known_hosts file, holding its pinned host key. */
  readonly knownHosts: string;
  /**
   * The control socket of a shared connection (the host agent's), if the
   * project has one: a login through it skips SSH's handshake. ssh falls
   * back to its own connection while no master listens there.
   */
  readonly controlPath?: string;
}

/**
 * How virtdev's own logins reach project `paths`' guest on `port` with the
 * user's key: pinned to its known_hosts, and through the connection its
 * host agent shares (`run/ssh.ctl`) when there is one.
 */
export function projectSshTarget(
  paths: Pick<ProjectPaths, "name" | "knownHosts" | "runtime">,
  options: { readonly port: number; readonly identity: string },
): SshTarget {
  return {
    project: paths.name,
    port: options.port,
    identity: options.identity,
    knownHosts: paths.knownHosts,
    controlPath: paths.runtime.sshControl,
  };
}

/** The destination argument: the guest user at host loopback. */
export const sshDestination = `${guestUser}@127.0.0.1`;

/**
 * The ssh options for `target`. The user's ssh_config is not read (`-F
 * none`): a `Host *` entry that forwards the agent or X11 would hand the
 * guest a way out of its isolation.
 */
export function sshOptions(
  target: SshTarget,
  options: { readonly batch?: boolean; readonly controlMaster?: boolean } = {},
): string[] {
  const args = [
    "-F",
    "none",
    "-i",
    target.identity,
    "-p",
    String(target.port),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `HostKeyAlias=${hostKeyAlias(target.project)}`,
    "-o",
    `UserKnownHostsFile=${_quoteConfigValue(target.knownHosts)}`,
    "-o",
    "GlobalKnownHostsFile=none",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "CheckHostIP=no",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "LogLevel=ERROR",
    // Plain X25519 first: the hybrid post-quantum exchange costs a guest
    // under TCG about 0.1 s a login, and these connections never leave the
    // host (loopback to passt, passt to the guest).
    "-o",
    `KexAlgorithms=${_kexAlgorithms}`,
    // A guest that stops answering (a panic, a host agent that cut its
    // network) ends the session within a minute instead of holding it open.
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "ServerAliveCountMax=4",
  ];
  // The timeout also covers the SSH greeting: a port that accepts but never speaks (a hung network) fails.
  args.push(...(options.batch ? ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] : ["-o", "ConnectTimeout=30"]));
  const control = target.controlPath === undefined ? undefined : usableControlPath(target.controlPath);
  if (control !== undefined) {
    args.push(
      "-o",
      `ControlPath=${_quoteConfigValue(control)}`,
      "-o",
      `ControlMaster=${options.controlMaster ? "yes" : "no"}`,
      "-o",
      "ControlPersist=no",
    );
  }
  return args;
}

/** X25519 moved to the head of ssh's own list (`^`), which stays as the fallback. */
const _kexAlgorithms = "^curve25519-sha256,curve25519-sha256@libssh.org";

/**
 * `path` as an ssh ControlPath value, or undefined when ssh could not use
 * it: a master binds `<path>.<16 characters>` first, and a Unix socket's
 * path holds at most 107 bytes. A `%` is doubled (ssh expands `%` tokens
 * in it).
 */
export function usableControlPath(path: string): string | undefined {
  if (new TextEncoder().encode(path).length + 17 > 107) return undefined;
  return path.replaceAll("%", "%%");
}

/** The full `ssh` argv (after the program name) to run `command` in the guest. */
export function sshArguments(
  target: SshTarget,
  command: readonly string[],
  options: { readonly batch?: boolean; readonly controlMaster?: boolean } = {},
): string[] {
  return [...sshOptions(target, options), sshDestination, ...command];
}

/**
 * The remote-shell string for `rsync -e`. rsync splits it on spaces and
 * honours single quotes, so every word that needs it is single-quoted.
 *
 * @throws {VirtdevError} exit 70 when a path holds a single quote, which
 *   rsync's splitter cannot carry.
 */
export function rsyncRemoteShell(target: SshTarget): string {
  return ["ssh", ...sshOptions(target, { batch: true })].map(_quoteForRsync).join(" ");
}

function _quoteForRsync(word: string): string {
  if (/^[A-Za-z0-9_./=@:,+-]+$/.test(word)) return word;
  if (word.includes("'")) {
    throw new VirtdevError(`A path virtdev passes to rsync contains a single quote: ${word}.`, {
      exitCode: 70,
      hint: "Move VIRTDEV_HOME or VIRTDEV_SSH_KEY to a path without quotes.",
    });
  }
  return `'${word}'`;
}

/** Quotes a value inside an ssh `-o` option, where spaces split words. */
function _quoteConfigValue(value: string): string {
  return /[\s"]/.test(value) ? `"${value.replaceAll('"', '\\"')}"` : value;
}

/** Whether ssh's stderr says the server presented a key other than the pinned one. */
export function isHostKeyFailure(stderr: string): boolean {
  return /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No (ED25519|RSA|ECDSA) host key is known/i
    .test(stderr);
}

/** Whether ssh's stderr says the guest refused the key. */
export function isKeyRefused(stderr: string): boolean {
  return /Permission denied \(publickey/.test(stderr);
}

/**
 * Sends `ssh -O <request>` to the master at `target`'s control socket (a
 * host process: no login).
 *
 * @returns whether ssh says it was done: false also where there is no
 * master, or where ssh could not use that socket.
 */
export async function sshControlRequest(target: SshTarget, request: "check" | "exit"): Promise<boolean> {
  if (target.controlPath === undefined || usableControlPath(target.controlPath) === undefined) return false;
  const args = [...sshOptions(target, { batch: true }), "-O", request, sshDestination];
  const result = await runTool("ssh", args, { allowFailure: true, timeoutMs: 5_000 }).catch(() => undefined);
  return result?.code === 0;
}
