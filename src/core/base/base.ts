/**
 * The sealed base: turning an installation into it, and reading it.
 *
 * @module
 */
import {
  ensurePrivateDirectory,
  privateDirectoryMode,
  privateFileMode,
  readOnlyFileMode,
} from "../store/file_modes.ts";
import { join } from "../store/path.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { VirtdevError } from "../store/errors.ts";
import { checkImage } from "../vm/images.ts";
import { baseFileNames, pathExists, type Store } from "../store/store.ts";

/** Exit codes of `seal`. */
export const SealExit = {
  noInstallation: 3,
  baseExists: 4,
  fileMissing: 5,
  systemCheckFailed: 6,
  homeCheckFailed: 7,
  leftovers: 8,
} as const;

/**
 * Seals `installation/` into the read-only base `system/` at generation 1.
 * The files move into a staging directory that is renamed to `system/` in
 * one step, so a crash leaves either no base or a complete one.
 */
export async function sealBase(
  store: Store,
  options: { readonly onProgress?: (line: string) => void } = {},
): Promise<void> {
  const progress = options.onProgress ?? (() => {});
  const installation = store.installation;
  const base = store.base;
  const staging = join(store.root, "system.sealing");
  await _recoverInterruptedSeal(store, staging);

  if (!await pathExists(installation.dir)) {
    throw new VirtdevError(`No installation to seal: ${installation.dir} does not exist.`, {
      exitCode: SealExit.noInstallation,
      hint: "Install a base first with 'virtdev install --image <cloud image>'.",
    });
  }
  if (await pathExists(base.dir)) {
    throw new VirtdevError(`A sealed base already exists: ${base.dir}.`, {
      exitCode: SealExit.baseExists,
      hint: "A base cannot be replaced in place yet: start over with 'virtdev nuke' (backups go too; copy them first).",
    });
  }
  for (const file of baseFileNames) {
    if (!await pathExists(join(installation.dir, file))) {
      throw new VirtdevError(`The installation is incomplete: ${file} is missing in ${installation.dir}.`, {
        exitCode: SealExit.fileMissing,
        hint: "Run 'virtdev install' again.",
      });
    }
  }
  progress("Checking image integrity...");
  if (!await checkImage(installation.systemImage)) {
    throw new VirtdevError(`The system disk fails 'qemu-img check': ${installation.systemImage}.`, {
      exitCode: SealExit.systemCheckFailed,
      hint: "Run 'qemu-img check' on it for details, or install again.",
    });
  }
  if (!await checkImage(installation.homeImage)) {
    throw new VirtdevError(`The home disk fails 'qemu-img check': ${installation.homeImage}.`, {
      exitCode: SealExit.homeCheckFailed,
      hint: "Run 'qemu-img check' on it for details, or install again.",
    });
  }

  await Deno.mkdir(staging, { mode: privateDirectoryMode });
  await Deno.chmod(staging, privateDirectoryMode);
  for (const file of baseFileNames) {
    await Deno.rename(join(installation.dir, file), join(staging, file));
    crashPoint(`seal.moved-${file}`);
  }
  // The kernel the installation handed over, if it did: projects boot it directly.
  if (await pathExists(installation.boot)) await Deno.rename(installation.boot, join(staging, "boot"));
  await writeFileAtomic(join(staging, "generation"), "1\n", { mode: readOnlyFileMode });
  for (const file of baseFileNames) await Deno.chmod(join(staging, file), readOnlyFileMode);
  await Deno.rename(staging, base.dir);

  try {
    await Deno.remove(installation.dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    if ((error as { code?: string }).code !== "ENOTEMPTY") throw error;
    const leftovers: string[] = [];
    for await (const entry of Deno.readDir(installation.dir)) leftovers.push(entry.name);
    throw new VirtdevError(
      `The base is sealed at ${base.dir}, but ${installation.dir} still holds: ${leftovers.sort().join(", ")}.`,
      { exitCode: SealExit.leftovers, hint: `Look at them, then remove the directory: rm -r '${installation.dir}'.` },
    );
  }
}

/** Puts the files of an interrupted seal back into the installation. */
async function _recoverInterruptedSeal(store: Store, staging: string): Promise<void> {
  if (!await pathExists(staging)) return;
  await ensurePrivateDirectory(store.installation.dir);
  for (const file of baseFileNames) {
    const from = join(staging, file);
    const to = join(store.installation.dir, file);
    if (await pathExists(from) && !await pathExists(to)) {
      await Deno.chmod(from, privateFileMode);
      await Deno.rename(from, to);
    }
  }
  if (await pathExists(join(staging, "boot")) && !await pathExists(store.installation.boot)) {
    await Deno.rename(join(staging, "boot"), store.installation.boot);
  }
  await Deno.remove(staging, { recursive: true });
}
