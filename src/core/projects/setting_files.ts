/**
 * A project's own choices, kept beside its disks: what no provisioning
 * rebuilds and the user would not want to set again. The list is known
 * here once; clone copies part of it, and a rebuild (`recreate`, the
 * rebuilds of `upgrade`) saves all of it before it destroys the project
 * and puts it back into the new one.
 *
 * @module
 */
import { copyFileAtomic, syncDirectory } from "../store/atomic_write.ts";
import { privateDirectoryMode } from "../store/file_modes.ts";
import { join } from "../store/path.ts";
import { pathExists, type Store } from "../store/store.ts";

/** The files: backup manifest, size, zone, allowlist, forwards, SSH port. */
export const settingFiles = ["manifest", "settings.json", "net", "allow", "forwards.json", "port"] as const;

/** What a clone takes of them: forwards and the port stay with the source (two VMs cannot share a host port). */
export const clonedSettingFiles: readonly string[] = settingFiles.filter((file) =>
  file !== "forwards.json" && file !== "port"
);

/** Where a rebuild keeps the settings of project `name` while the project does not exist. */
export function savedSettingsDir(store: Store, name: string): string {
  return join(store.projectsDir, `.settings-${name}`);
}

/**
 * Saves the project's setting files before a rebuild destroys it. A save
 * already there (a rebuild interrupted after its destroy) is the
 * original's, and is kept as it is.
 */
export async function saveSettings(store: Store, name: string): Promise<void> {
  const target = savedSettingsDir(store, name);
  if (await pathExists(target)) return;
  const staging = `${target}.${Deno.pid}.tmp`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { mode: privateDirectoryMode });
  const dir = store.project(name).dir;
  for (const file of settingFiles) {
    if (await pathExists(join(dir, file))) await Deno.copyFile(join(dir, file), join(staging, file));
  }
  await Deno.rename(staging, target);
  await syncDirectory(store.projectsDir);
}

/**
 * Puts the saved settings into the rebuilt project (over what create
 * wrote), then drops the save.
 *
 * @returns the files put back.
 */
export async function restoreSettings(store: Store, name: string): Promise<string[]> {
  const saved = savedSettingsDir(store, name);
  if (!await pathExists(saved)) return [];
  const dir = store.project(name).dir;
  const restored: string[] = [];
  for (const file of settingFiles) {
    if (!await pathExists(join(saved, file))) continue;
    await copyFileAtomic(join(saved, file), join(dir, file));
    restored.push(file);
  }
  await Deno.remove(saved, { recursive: true });
  await syncDirectory(store.projectsDir);
  return restored;
}
