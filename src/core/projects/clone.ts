/**
 * `clone`: a new project from a stopped one. Its two deltas, nvram and
 * snapshots are copied (a reflink where the file system allows; holes stay
 * holes) and still rest on the same base, so the cost grows with what the
 * source has written, never with the base. The clone has its own SSH host
 * key, instance id (so the guest gives itself a new machine-id at its
 * first boot), and port (chosen at its first start); it keeps the source's
 * manifest, settings, zone and allowlist. Forwards stay with the source: two VMs
 * cannot forward the same host port.
 *
 * @module
 */
import { syncDirectory } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { VirtdevError } from "../store/errors.ts";
import { ensurePrivateDirectory, privateDirectoryMode } from "../store/file_modes.ts";
import { join } from "../store/path.ts";
import { copyReflinked } from "../store/reflink_copy.ts";
import { pathExists, type ProjectPaths, type Store } from "../store/store.ts";
import { generateHostKey } from "../guest/host_key.ts";
import { writeInstanceId } from "../guest/instance_id.ts";
import { finishInterruptedRevert } from "./disk_snapshots.ts";
import { clonedSettingFiles } from "./setting_files.ts";
import { removeAbandonedWork, requireProject, requireStopped, validateNewProjectName } from "./project.ts";

/** Exit codes of `clone`. */
export const CloneExit = { running: 4, exists: 6 } as const;

/** What a clone copies from its source, when the source has it. */
const _copied = [
  "system.qcow2",
  "home.qcow2",
  "nvram",
  "generation",
  ...clonedSettingFiles,
  "snapshots",
  "kernel-diverged",
];

/** Per-project configuration files the clone gets too (`~/.config/virtdev/projects/<p>/`). */
const _configCopied = ["manifest", "provision"];

/** Copies `files` (and directories) of `from` into `to`, reflinked where the file system allows. */
async function _copy(from: string, to: string, files: readonly string[]): Promise<void> {
  const present: string[] = [];
  for (const file of files) if (await pathExists(join(from, file))) present.push(join(from, file));
  await copyReflinked(present, to);
}

/** Clones stopped project `source` as `target`. Call under the store lock. */
export async function cloneProject(
  store: Store,
  source: string,
  target: string,
  options: { readonly configDir: string },
): Promise<ProjectPaths> {
  validateNewProjectName(target);
  const from = await requireProject(store, source);
  await requireStopped(store, source, CloneExit.running, { what: "clone it" });
  await finishInterruptedRevert(from);
  const paths = store.project(target);
  await removeAbandonedWork(store);
  if (await pathExists(paths.dir)) {
    throw new VirtdevError(`Project ${target} already exists.`, {
      exitCode: CloneExit.exists,
      hint: `Choose another name, or remove it with 'virtdev destroy ${target}'.`,
    });
  }
  // A .create- directory, so that what a crash leaves is cleared like a create's.
  const staging = join(store.projectsDir, `.create-${target}-${Deno.pid}`);
  await Deno.mkdir(staging, { mode: privateDirectoryMode });
  try {
    await _copy(from.dir, staging, _copied);
    await Promise.all([generateHostKey(staging, target), writeInstanceId(staging)]);
    crashPoint("clone.copied");
    await Deno.rename(staging, paths.dir);
    await syncDirectory(store.projectsDir);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
  const configFrom = join(options.configDir, "projects", source);
  const configTo = join(options.configDir, "projects", target);
  if (await pathExists(configFrom) && !await pathExists(configTo)) {
    await ensurePrivateDirectory(configTo);
    await _copy(configFrom, configTo, _configCopied);
  }
  return paths;
}
