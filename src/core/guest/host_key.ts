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
import { generateEd25519 } from "./ed25519_key.ts";
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
  const { privateKey, publicKey } = await generateEd25519(hostKeyAlias(project));
  const [type, key] = publicKey.split(" ");
  // The pin and the public half first: a private key without them is made again.
  await writeFileAtomic(join(dir, "known_hosts"), `${hostKeyAlias(project)} ${type} ${key}\n`);
  await writeFileAtomic(join(dir, "host_key.pub"), `${publicKey}\n`);
  await writeFileAtomic(join(dir, "host_key"), privateKey);
}
