/**
 * Per-project SSH host keys. The host makes the key at `create`, passes
 * the private half to the guest by fw_cfg at each boot, and pins the public
 * half in the project's own known_hosts under a per-project alias, so SSH
 * runs with `StrictHostKeyChecking=yes`.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { runTool } from "../store/process.ts";
import { pathExists, type ProjectPaths } from "../store/store.ts";

/** The name a project's host key is pinned under in its known_hosts. */
export function hostKeyAlias(project: string): string {
  return `virtdev-${project}`;
}

/**
 * Makes the project's host key and known_hosts unless both exist. A pair
 * left half-made by a crash is made again.
 */
export async function ensureHostKey(paths: ProjectPaths): Promise<void> {
  if (!await pathExists(paths.hostKey) || !await pathExists(paths.knownHosts)) {
    await generateHostKey(paths.dir, paths.name);
    return;
  }
  // Projects made before the public half was kept: it is in the pin.
  if (!await pathExists(paths.hostKeyPublic)) {
    const [_alias, type, key] = (await Deno.readTextFile(paths.knownHosts)).trim().split(/\s+/);
    await writeFileAtomic(paths.hostKeyPublic, `${type} ${key} ${hostKeyAlias(paths.name)}\n`);
  }
}

/** Generates a new host key pair in `dir` and pins it for `project`. */
export async function generateHostKey(dir: string, project: string): Promise<void> {
  const temporary = join(dir, `.host_key-${Deno.pid}`);
  await Deno.remove(temporary).catch(() => {});
  await Deno.remove(`${temporary}.pub`).catch(() => {});
  await runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", hostKeyAlias(project), "-f", temporary], {
    missingHint: "Install OpenSSH (the openssh package).",
  });
  const [type, key] = (await Deno.readTextFile(`${temporary}.pub`)).trim().split(/\s+/);
  await writeFileAtomic(join(dir, "known_hosts"), `${hostKeyAlias(project)} ${type} ${key}\n`);
  await Deno.rename(`${temporary}.pub`, join(dir, "host_key.pub"));
  await Deno.rename(temporary, join(dir, "host_key"));
}
