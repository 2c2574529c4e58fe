/**
 * `ssh-config`: an OpenSSH client configuration with a `Host <p>.virtdev`
 * block per project, so that plain `ssh web.virtdev`, scp, rsync and
 * editors (VS Code Remote-SSH) reach a project with its pinned host key
 * and no virtdev in the loop. Written to `~/.config/virtdev/ssh_config`;
 * once it exists, create, start, clone, move and destroy keep it current.
 * `--install` adds one `Include` line at the top of `~/.ssh/config` (and
 * `--uninstall` removes exactly that line): nothing else there changes.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { VirtdevError } from "../store/errors.ts";
import { dirname, join } from "../store/path.ts";
import { pathExists, readOptionalText, type Store } from "../store/store.ts";
import { hostKeyAlias } from "../guest/host_key.ts";

/** The suffix of every project's host name in the configuration. */
export const sshHostSuffix = ".virtdev";

/** Exit codes of `ssh-config`. */
export const SshConfigExit = { notInstalled: 5, unreadable: 6 } as const;

/** Where virtdev writes its ssh configuration. */
export function sshConfigPath(configDir: string): string {
  return join(configDir, "ssh_config");
}

/** A value for ssh_config: double-quoted where it has a space (ssh_config has no other escape). */
function _value(text: string): string {
  if (/["\n\r]/.test(text)) {
    throw new VirtdevError(`A path with a double quote or a newline cannot go into an ssh configuration: ${text}.`, {
      exitCode: 70,
    });
  }
  return /\s/.test(text) ? `"${text}"` : text;
}

/** One project's entry, or `undefined` when it has no port yet (never started). */
export function renderHostBlock(options: {
  readonly project: string;
  readonly port: number;
  readonly identity: string;
  readonly knownHosts: string;
}): string {
  return [
    `Host ${options.project}${sshHostSuffix}`,
    "  HostName 127.0.0.1",
    `  Port ${options.port}`,
    "  User dev",
    `  IdentityFile ${_value(options.identity)}`,
    "  IdentitiesOnly yes",
    `  HostKeyAlias ${hostKeyAlias(options.project)}`,
    `  UserKnownHostsFile ${_value(options.knownHosts)}`,
    "  StrictHostKeyChecking yes",
    "  UpdateHostKeys no",
    "  ForwardAgent no",
    "  ForwardX11 no",
    "",
  ].join("\n");
}

/** The whole configuration for the store's projects. */
export async function renderSshConfig(store: Store, options: { readonly identity: string }): Promise<string> {
  const blocks = [
    "# Written by virtdev ('virtdev ssh-config'); it is rewritten as projects come and go, so do not edit it.",
    "# Projects that have never started have no port yet, and no entry.",
    "",
  ];
  for (const project of await store.listProjects()) {
    const paths = store.project(project);
    const port = Number((await readOptionalText(paths.port))?.trim());
    if (!Number.isSafeInteger(port) || port <= 0) continue;
    blocks.push(renderHostBlock({ project, port, identity: options.identity, knownHosts: paths.knownHosts }));
  }
  return blocks.join("\n");
}

/** Writes the configuration. */
export async function writeSshConfig(
  store: Store,
  options: { readonly configDir: string; readonly identity: string },
): Promise<string> {
  const path = sshConfigPath(options.configDir);
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, await renderSshConfig(store, options));
  return path;
}

/** Rewrites the configuration if the user has one (they ran `ssh-config` once); never creates it. */
export async function refreshSshConfig(
  store: Store,
  options: { readonly configDir: string; readonly identity: string },
): Promise<void> {
  if (await pathExists(sshConfigPath(options.configDir))) await writeSshConfig(store, options);
}

/** The line `--install` adds to ~/.ssh/config. */
export function includeLine(configDir: string): string {
  return `Include ${_value(sshConfigPath(configDir))}`;
}

/** The user's ssh configuration file, following a link (dotfile managers keep it elsewhere). */
async function _userConfig(home: string): Promise<string> {
  const path = join(home, ".ssh", "config");
  try {
    return await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return path;
    throw error;
  }
}

/**
 * Adds the Include line at the top of ~/.ssh/config (an Include below a
 * `Host` block would apply only inside it). Nothing else in the file
 * changes; its mode is kept.
 *
 * @returns whether the line was added (false: it was there).
 */
export async function installInclude(home: string, configDir: string): Promise<boolean> {
  const file = await _userConfig(home);
  const line = includeLine(configDir);
  const text = await readOptionalText(file);
  if (text !== undefined && text.split("\n").includes(line)) return false;
  const mode = text === undefined ? 0o600 : ((await Deno.stat(file)).mode ?? 0o600) & 0o777;
  if (text === undefined) await Deno.mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${line}\n${text ?? ""}`, { mode });
  return true;
}

/**
 * Removes the Include line that `installInclude` added, and nothing else.
 *
 * @returns whether it was there.
 */
export async function uninstallInclude(home: string, configDir: string): Promise<boolean> {
  const file = await _userConfig(home);
  const line = includeLine(configDir);
  const text = await readOptionalText(file);
  if (text === undefined) return false;
  const lines = text.split("\n");
  const index = lines.indexOf(line);
  if (index === -1) return false;
  lines.splice(index, 1);
  const mode = ((await Deno.stat(file)).mode ?? 0o600) & 0o777;
  await writeFileAtomic(file, lines.join("\n"), { mode });
  return true;
}
