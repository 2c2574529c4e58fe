/**
 * rsync against a guest: the host's rsync must be one that withstands a
 * malicious peer, and every transfer in which the guest sends files
 * (`backup`, `transfer` from the guest) stores the guest's symlinks
 * *munged* (`--munge-links`: the target gets a `/rsyncd-munged/` prefix),
 * so that no later path lookup on the host can pass through one of them.
 * `restore` sends the links back unmunged, exactly as the guest made them.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";

/** The prefix rsync puts before a munged symlink's target. */
export const mungePrefix = "/rsyncd-munged/";

/** The oldest rsync that fixes CVE-2024-12084…12088 (a malicious peer). */
export const minimumRsync: readonly [number, number, number] = [3, 4, 0];

/** Exit codes of the rsync checks (shared by backup, restore and transfer). */
export const RsyncExit = { unsafe: 69 } as const;

/** How to install rsync, for hints. */
export const rsyncInstallHint =
  "Install rsync 3.4.0 or later: 'pacman -S rsync' (Arch) or 'apt install rsync' (Debian).";

/** The rsync options shared by backup and restore. */
export const rsyncCopyOptions: readonly string[] = [
  "--archive", // permissions, times, symlinks as links
  // Not the guest's owners: a backup's files are the user's, whatever uid a guest chose (virtdev run as root would
  // otherwise hand them to the host user of that uid), and in the guest dev owns what it is given.
  "--no-owner",
  "--no-group",
  // Run as root, rsync would also write as root: a guest's 0555 directory would not get the write bit a user's rsync
  // gives it while filling it, and a later cleanup by the user could not go through it.
  "--no-super",
  "--recursive", // directories in --files-from are copied with their contents
  "--hard-links",
  "--no-devices",
  "--no-specials",
  "--numeric-ids",
  "--munge-links", // receiving (backup): store links munged; sending (restore): unmunge them
  "--ignore-missing-args",
  "--stats",
  "--files-from=-",
];

/** Counts read from rsync's `--stats`. */
export interface RsyncStats {
  /** Entries in the transfer of every kind: files, directories, symlinks. */
  readonly entries: number;
  /** Regular files whose data was sent. */
  readonly transferred: number;
  /** Bytes of all files in the transfer. */
  readonly totalBytes: number;
}

/** Reads the counts out of rsync's `--stats` output. */
export function parseRsyncStats(output: string): RsyncStats {
  const number = (pattern: RegExp): number => Number((pattern.exec(output)?.[1] ?? "0").replaceAll(",", ""));
  return {
    entries: number(/^Number of files: ([\d,]+)/m),
    transferred: number(/^Number of regular files transferred: ([\d,]+)/m),
    totalBytes: number(/^Total file size: ([\d,]+) bytes/m),
  };
}

/** The version in `rsync --version`'s first line, if it has one. */
export function parseRsyncVersion(text: string): readonly [number, number, number] | undefined {
  const match = /^rsync\s+version\s+v?(\d+)\.(\d+)(?:\.(\d+))?/m.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : undefined;
}

/** Whether version `a` is at least `b`. */
export function versionAtLeast(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i];
  }
  return true;
}

let _checked: Promise<void> | undefined;

/**
 * Checks, once per process, that the host's rsync can face a hostile
 * guest: version 3.4.0 or later, and no `/rsyncd-munged` directory that
 * would make munged links lead somewhere.
 *
 * @throws {VirtdevError} exit 69 naming what was found and what to do.
 */
export function requireSafeRsync(): Promise<void> {
  _checked ??= _checkRsync().catch((error) => {
    _checked = undefined;
    throw error;
  });
  return _checked;
}

async function _checkRsync(): Promise<void> {
  const result = await runTool("rsync", ["--version"], { allowFailure: true, missingHint: rsyncInstallHint });
  const version = parseRsyncVersion(result.stdout);
  if (version === undefined || !versionAtLeast(version, minimumRsync)) {
    const found = version ? version.join(".") : `an unrecognised version (${result.stdout.split("\n")[0].trim()})`;
    throw new VirtdevError(
      `The host's rsync is ${found}; virtdev needs ${minimumRsync.join(".")} or later to copy files from a guest.`,
      {
        exitCode: RsyncExit.unsafe,
        hint: [
          "Older rsync can be attacked by its peer (CVE-2024-12084 to 12088), and a guest is an untrusted peer.",
          rsyncInstallHint,
        ],
      },
    );
  }
  try {
    await Deno.lstat(mungePrefix.slice(0, -1));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    // Not permitted to look: the path is outside what virtdev may read, so
    // it cannot be checked; rsync's munged links still lead nowhere unless
    // someone with root made it.
    if (error instanceof Deno.errors.NotCapable) return;
    throw error;
  }
  throw new VirtdevError(`${mungePrefix.slice(0, -1)} exists on this host.`, {
    exitCode: RsyncExit.unsafe,
    hint: [
      "virtdev stores a guest's symlinks under that prefix so that they lead nowhere; with it present they would.",
      `Remove ${mungePrefix.slice(0, -1)} (it is not part of any normal system).`,
    ],
  });
}

/** How {@link copyManifestPaths} reports a failure. */
export interface CopyFailure {
  /** The exit codes for a partial transfer, an SSH failure and anything else. */
  readonly codes: { readonly partial: number; readonly transport: number; readonly other: number };
  /** What failed, e.g. "Backup failed". */
  readonly what: string;
  readonly hint?: string;
}

/**
 * Copies the manifest's `entries` (paths below `from`) to `to` with
 * {@link rsyncCopyOptions}, over `remoteShell`; one side is the guest.
 *
 * @returns rsync's counts.
 * @throws {VirtdevError} with `failure`'s codes when rsync fails.
 */
export async function copyManifestPaths(
  entries: readonly string[],
  options: {
    readonly from: string;
    readonly to: string;
    readonly remoteShell: string;
    readonly linkDest?: string;
    readonly verbose?: boolean;
    readonly progress?: boolean;
    readonly onOutput?: (text: string) => void;
    readonly failure: CopyFailure;
  },
): Promise<RsyncStats> {
  const args = [
    ...rsyncCopyOptions,
    ...(options.linkDest ? [`--link-dest=${options.linkDest}`] : []),
    ...(options.verbose ? ["--itemize-changes"] : []),
    ...(options.progress ? ["--info=progress2"] : []),
    "-e",
    options.remoteShell,
    "--",
    options.from,
    options.to,
  ];
  const shown = options.verbose || options.progress;
  const result = await runTool("rsync", args, {
    stdin: `${entries.join("\n")}\n`,
    allowFailure: true,
    env: { LC_ALL: "C" },
    onOutput: shown ? (text) => options.onOutput?.(text) : undefined,
    missingHint: rsyncInstallHint,
  });
  if (result.code !== 0) {
    throw rsyncError(result.code, result.stderr, options.failure.codes, options.failure.what, options.failure.hint);
  }
  return parseRsyncStats(result.stdout);
}

/** Maps a failed rsync to the command's error. */
export function rsyncError(
  code: number,
  stderr: string,
  codes: { readonly partial: number; readonly transport: number; readonly other: number },
  what: string,
  hint?: string,
): VirtdevError {
  const detail = stderr.trim().split("\n").slice(-5).join("\n");
  if (code === 23 || code === 24) {
    return new VirtdevError(`${what}: rsync transferred only part of the files (rsync exit ${code}).\n${detail}`, {
      exitCode: codes.partial,
      hint,
    });
  }
  if (code === 255) {
    return new VirtdevError(`${what}: the SSH connection failed (rsync exit 255).\n${detail}`, {
      exitCode: codes.transport,
      hint: hint ?? "Check that the VM is up: virtdev wait <project>.",
    });
  }
  return new VirtdevError(`${what}: rsync failed with exit ${code}.\n${detail}`, { exitCode: codes.other, hint });
}

/**
 * The symlinks an rsync run created or changed, from its
 * `--out-format=%i %n` lines, as paths relative to the destination.
 * rsync writes unprintable bytes of a name as `\#ooo`; both readings are
 * returned where a name holds such a sequence.
 */
export function itemizedSymlinks(output: string): string[] {
  const names: string[] = [];
  for (const line of output.split("\n")) {
    const match = /^[<>ch.*]L\S{9} (.+)$/.exec(line);
    if (!match) continue;
    names.push(match[1]);
    const decoded = _decodeRsyncEscapes(match[1]);
    if (decoded !== match[1]) names.push(decoded);
  }
  return names;
}

function _decodeRsyncEscapes(name: string): string {
  const raw = new TextEncoder().encode(name);
  const octal = (i: number): boolean => raw[i] >= 0x30 && raw[i] <= 0x37;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x23 && octal(i + 2) && octal(i + 3) && octal(i + 4)) {
      bytes.push(((raw[i + 2] - 0x30) << 6) | ((raw[i + 3] - 0x30) << 3) | (raw[i + 4] - 0x30));
      i += 4;
    } else {
      bytes.push(raw[i]);
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * Turns the munged symlinks an rsync run made under `root` (relative
 * paths, as rsync itemized them) back into the links the guest sent. rsync
 * does it, not virtdev: a local copy of exactly those names onto
 * themselves, in which `--munge-links` makes the sending side unmunge each
 * link and the receiving side replace it. Nothing is followed: every
 * directory on the way was made by the first run (a real directory) or is
 * itself a munged link that leads nowhere, and names that do not exist are
 * skipped. virtdev itself needs no access to `root`.
 *
 * @returns rsync's exit code (0 when there was nothing to do).
 */
export async function unmungeSymlinks(root: string, relativePaths: readonly string[]): Promise<number> {
  const names = [...new Set(relativePaths)].filter((name) => name !== "" && !name.split("/").includes(".."));
  if (names.length === 0) return 0;
  const directory = root.endsWith("/") ? root : `${root}/`;
  const result = await runTool("rsync", [
    "--archive",
    "--no-recursive",
    "--munge-links",
    "--ignore-missing-args",
    "--from0",
    "--files-from=-",
    "--",
    directory,
    directory,
  ], { stdin: `${names.join("\0")}\0`, allowFailure: true, env: { LC_ALL: "C" }, missingHint: rsyncInstallHint });
  return result.code;
}
