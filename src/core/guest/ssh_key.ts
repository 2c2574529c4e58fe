/**
 * The SSH key virtdev logs in with.
 *
 * @module
 */
import { dirname } from "../store/path.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { makePrivate, privateDirectoryMode } from "../store/file_modes.ts";
import { pathExists, readOptionalText } from "../store/store.ts";

/**
 * Makes an ed25519 key at `path` unless one exists.
 *
 * @returns `true` when a key was generated, `false` when one existed.
 */
export async function ensureKey(path: string): Promise<boolean> {
  if (await pathExists(path)) return false;
  await Deno.mkdir(dirname(path), { recursive: true, mode: privateDirectoryMode });
  await runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "virtdev", "-f", path], {
    missingHint: "Install OpenSSH: 'pacman -S openssh' (Arch) or 'apt install openssh-client' (Debian).",
  });
  await makePrivate(`${path}.pub`);
  return true;
}

/**
 * Checks that the private key exists and only its owner can read it.
 *
 * @throws {VirtdevError} exit 77 when missing, 78 when readable by others.
 */
export async function requireKey(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await Deno.stat(path)).mode ?? 0;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new VirtdevError(`SSH key not found: ${path}.`, {
      exitCode: ExitCode.keyMissing,
      hint: "Generate one with 'virtdev key', or point VIRTDEV_SSH_KEY at your key.",
    });
  }
  const permissions = mode & 0o777;
  if (permissions !== 0o600 && permissions !== 0o400) {
    throw new VirtdevError(`SSH key permissions too open: ${path} (${permissions.toString(8)}).`, {
      exitCode: ExitCode.keyPermissions,
      hint: `Restrict it: chmod 600 '${path}'`,
    });
  }
}

/** The public half of the key at `privateKey`: its `.pub`, or derived by ssh-keygen. */
export async function publicKeyOf(privateKey: string): Promise<string> {
  const stored = await readOptionalText(`${privateKey}.pub`);
  if (stored?.trim()) return stored.trim();
  return (await runTool("ssh-keygen", ["-y", "-f", privateKey])).stdout.trim();
}
