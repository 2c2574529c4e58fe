/**
 * Projects: creating one over the base, destroying it, and detaching it
 * from the base. The caller holds the store lock for each change.
 *
 * @module
 */
import { newProjectZone } from "../vm/egress/zone_settings.ts";
import { describeRecovery, recoverReseal } from "../base/reseal.ts";
import { collectGenerations } from "../base/kept_generations.ts";
import type { Reporter } from "../store/reporter.ts";
import { basename, join } from "../store/path.ts";
import { removeTree } from "../store/remove_tree.ts";
import { copyFileAtomic, syncDirectory, writeFileAtomic } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { allocatedBytes } from "../store/disk_usage.ts";
import { VirtdevError } from "../store/errors.ts";
import { detachedMarker, type Generation, readGeneration } from "../store/generation.ts";
import { generateHostKey } from "../guest/host_key.ts";
import { writeInstanceId } from "../guest/instance_id.ts";
import { ensurePrivateDirectory, privateDirectoryMode } from "../store/file_modes.ts";
import { checkImage, convertStandalone, createDelta, imageInfo, rebaseStandalone } from "../vm/images.ts";
import {
  type BasePaths,
  pathExists,
  type ProjectPaths,
  reservedNames,
  type Store,
  validateProjectName,
} from "../store/store.ts";
import { requireProject } from "./project_lookup.ts";
import { requireStopped } from "./project_state.ts";

export { projectMissingExitCode, requireProject, requireVmPaths } from "./project_lookup.ts";
export { requireStopped } from "./project_state.ts";

/** Exit codes of `create`. */
export const CreateExit = {
  reserved: 3,
  noBase: 4,
  baseFileMissing: 5,
  exists: 6,
  baseGenerationInvalid: 7,
} as const;

/** Checks `name` for `create`, before any lock or file is touched. */
export function validateNewProjectName(name: string): void {
  validateProjectName(name);
  if (reservedNames.includes(name)) {
    throw new VirtdevError(`The name '${name}' is reserved by virtdev.`, {
      exitCode: CreateExit.reserved,
      hint: `Reserved names: ${reservedNames.join(", ")}. Pick another name.`,
    });
  }
}

/**
 * Creates project `name`: two thin deltas over the base, an nvram copy and
 * the base generation. The project is assembled in a hidden directory and
 * renamed into place, so it appears whole or not at all.
 */
export async function createProject(
  store: Store,
  name: string,
  options: { readonly reporter?: Reporter } = {},
): Promise<ProjectPaths> {
  validateNewProjectName(name);
  const recovered = describeRecovery(await recoverReseal(store));
  if (recovered) options.reporter?.info(recovered);
  const base = store.base;
  if (!await pathExists(base.dir)) {
    throw new VirtdevError(`There is no sealed base: ${base.dir} does not exist.`, {
      exitCode: CreateExit.noBase,
      hint: "Install and seal one first: 'virtdev install --image <cloud image>', then 'virtdev seal'.",
    });
  }
  for (const file of [base.systemImage, base.homeImage, base.nvram]) {
    if (!await pathExists(file)) {
      throw new VirtdevError(`The base is incomplete: ${file} is missing.`, {
        exitCode: CreateExit.baseFileMissing,
        hint: "The base is damaged; reinstall it ('virtdev nuke', then install and seal).",
      });
    }
  }
  const generation = await readGeneration(base.generation);
  if (generation.kind !== "number") {
    throw new VirtdevError(`The base generation is unreadable: ${base.generation}.`, {
      exitCode: CreateExit.baseGenerationInvalid,
      hint: "It must hold a whole number. The base is damaged; reinstall it.",
    });
  }
  const paths = store.project(name);
  await ensurePrivateDirectory(store.projectsDir);
  await removeAbandonedWork(store);
  if (await pathExists(paths.dir)) {
    throw new VirtdevError(`Project ${name} already exists.`, {
      exitCode: CreateExit.exists,
      hint: `Start it with 'virtdev start ${name}', or remove it with 'virtdev destroy ${name}'.`,
    });
  }

  const staging = join(store.projectsDir, `.create-${name}-${Deno.pid}`);
  await Deno.mkdir(staging, { mode: privateDirectoryMode });
  await Deno.chmod(staging, privateDirectoryMode);
  try {
    // Independent files, made at once: create is mostly waiting on tools.
    await Promise.all([
      createDelta(join(staging, "system.qcow2"), base.systemImage),
      createDelta(join(staging, "home.qcow2"), base.homeImage),
      copyFileAtomic(base.nvram, join(staging, "nvram")),
      writeFileAtomic(join(staging, "generation"), `${generation.value}\n`),
      // New projects reach the internet, not the LAN nor this host.
      writeFileAtomic(join(staging, "net"), `${newProjectZone}\n`),
      generateHostKey(staging, name),
      writeInstanceId(staging),
    ]);
    crashPoint("create.deltas-made");
    await Deno.rename(staging, paths.dir);
    await syncDirectory(store.projectsDir);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
  return paths;
}

/**
 * Removes what interrupted creates and destroys left behind. Safe only
 * under the store lock, when no other create or destroy can be running.
 */
export async function removeAbandonedWork(store: Store): Promise<void> {
  try {
    for await (const entry of Deno.readDir(store.projectsDir)) {
      if (/^\.(create|destroy)-|^\.settings-.*\.tmp$/.test(entry.name)) {
        await Deno.remove(join(store.projectsDir, entry.name), { recursive: true }).catch(() => {});
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Exit codes of `destroy`. */
export const DestroyExit = { running: 4, aborted: 5 } as const;

/** One file of a project, for the destroy listing. */
export interface ProjectFile {
  readonly name: string;
  readonly bytes: number;
}

/** Lists a project's files and their disk usage, sorted by name. */
export async function listProjectFiles(paths: ProjectPaths): Promise<ProjectFile[]> {
  const files: ProjectFile[] = [];
  for await (const entry of Deno.readDir(paths.dir)) {
    files.push({ name: entry.name, bytes: await allocatedBytes(join(paths.dir, entry.name)) });
  }
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Deletes project `name`. The directory is first renamed out of the
 * project namespace, so the project is gone at once even if the removal is
 * interrupted. Backups are kept.
 */
export async function destroyProject(store: Store, name: string): Promise<void> {
  const paths = store.project(name);
  const doomed = join(store.projectsDir, `.destroy-${name}-${Deno.pid}`);
  await Deno.rename(paths.dir, doomed);
  await syncDirectory(store.projectsDir);
  crashPoint("destroy.renamed");
  await removeTree(doomed);
  // The last project of a kept base generation takes it along.
  await collectGenerations(store);
}

/** Exit codes of `detach`. */
export const DetachExit = {
  running: 4,
  alreadyDetached: 5,
  noBacking: 6,
  aborted: 8,
  systemFailed: 10,
  homeFailed: 11,
  verifyFailed: 12,
  /** A delta is written over a base that is not the project's own generation (or is gone). */
  foreignBacking: 13,
} as const;

/** The two disks of a project, labelled. */
function _disks(paths: ProjectPaths): readonly { readonly label: "system" | "home"; readonly path: string }[] {
  return [
    { label: "system", path: paths.systemImage },
    { label: "home", path: paths.homeImage },
  ];
}

/**
 * Finishes or undoes a detach that was interrupted. A `.bak` file is the
 * original delta, kept until the swap commits by writing `detached`:
 * before that commit the originals are put back, after it the leftovers are
 * removed. Half-written `.detach` copies are always removed.
 *
 * @returns what was done, or `undefined` when nothing needed repair.
 */
export async function recoverInterruptedDetach(paths: ProjectPaths): Promise<"rolled-back" | "completed" | undefined> {
  const generation = await readGeneration(paths.generation);
  const committed = generation.kind === "detached";
  let action: "rolled-back" | "completed" | undefined;
  for (const disk of _disks(paths)) {
    const backup = `${disk.path}.bak`;
    const copy = `${disk.path}.detach`;
    if (await pathExists(backup)) {
      if (committed && await pathExists(disk.path)) {
        await Deno.remove(backup);
        action = "completed";
      } else {
        await Deno.rename(backup, disk.path);
        action = "rolled-back";
      }
    }
    if (await pathExists(copy)) {
      await Deno.remove(copy);
      action ??= "rolled-back";
    }
  }
  if (action) await syncDirectory(paths.dir);
  return action;
}

/** What `detach` will work on, checked before asking the user. */
export interface DetachPlan {
  readonly paths: ProjectPaths;
  readonly generation: string;
  readonly disks: readonly { readonly label: string; readonly path: string; readonly backing: string }[];
}

/**
 * Refuses a detach whose merge would read another base's bytes as this
 * project's: each delta must be written over its own generation's base
 * (the current one, or the kept one), and that base must be there.
 */
async function _requireOwnBase(
  store: Store,
  paths: ProjectPaths,
  generation: Generation,
  disks: readonly { readonly label: string; readonly backing: string }[],
): Promise<void> {
  const baseGeneration = await readGeneration(store.base.generation);
  const own: BasePaths[] = [];
  if (generation.kind === "number") own.push(store.keptBase(generation.value));
  // A project without a readable generation can only be judged against the base as it is.
  if (generation.kind !== "number" || (baseGeneration.kind === "number" && baseGeneration.value === generation.value)) {
    own.push(store.base);
  }
  for (const disk of disks) {
    const expected = own.map((base) => join(base.dir, `${disk.label}.qcow2`));
    if (expected.includes(disk.backing) && await pathExists(disk.backing)) continue;
    const which = generation.kind === "number" ? `generation ${generation.value}` : "the current base";
    throw new VirtdevError(
      `The ${disk.label} disk of ${paths.name} is written over ${disk.backing}, which is not its own base (${which}).`,
      {
        exitCode: DetachExit.foreignBacking,
        hint: [
          "Merging it onto another base would corrupt its file system unseen, so nothing was changed.",
          `If it has a backup: virtdev recreate --no-backup ${paths.name}`,
        ],
      },
    );
  }
}

/**
 * Checks that `name` can be detached: it exists, is stopped, is not yet
 * detached, and both disks still have backing files. Repairs an interrupted
 * earlier detach first. Call under the store lock.
 */
export async function planDetach(store: Store, name: string): Promise<DetachPlan & { recovered?: string }> {
  const paths = await requireProject(store, name);
  await requireStopped(store, name, DetachExit.running, { what: "detach it" });
  const recovered = await recoverInterruptedDetach(paths);
  const generation = await readGeneration(paths.generation);
  if (generation.kind === "detached") {
    throw new VirtdevError(`Project ${name} is already detached.`, {
      exitCode: DetachExit.alreadyDetached,
      hint: "Its disks no longer depend on the base.",
    });
  }
  const disks = [];
  for (const disk of _disks(paths)) {
    const backing = await pathExists(disk.path) ? (await imageInfo(disk.path)).backingFile : undefined;
    if (!backing) {
      throw new VirtdevError(`The ${disk.label} disk has no backing file: ${disk.path}.`, {
        exitCode: DetachExit.noBacking,
        hint: "There is nothing to detach it from. Check the project with 'virtdev disk " + name + "'.",
      });
    }
    disks.push({ label: disk.label, path: disk.path, backing });
  }
  await _requireOwnBase(store, paths, generation, disks);
  return {
    paths,
    generation: generation.kind === "number" ? generation.value : "-",
    disks,
    recovered,
  };
}

/**
 * Detaches a project from the base. By default each disk is converted to a
 * standalone copy beside it, checked, and swapped in; writing `detached` is
 * the commit point, and {@link recoverInterruptedDetach} repairs a crash at
 * any step. With `inPlace`, the deltas are rebased in place, which needs no
 * extra space.
 */
export async function detachProject(
  plan: DetachPlan,
  options: { readonly inPlace: boolean; readonly onStage?: (label: string) => { done(): void; fail(): void } },
): Promise<void> {
  const stage = options.onStage ?? (() => ({ done() {}, fail() {} }));
  const failCode = (label: string): number => label === "system" ? DetachExit.systemFailed : DetachExit.homeFailed;
  if (options.inPlace) {
    for (const disk of plan.disks) {
      const progress = stage(`Merging the base into the ${disk.label} disk`);
      try {
        await rebaseStandalone(disk.path);
        progress.done();
      } catch (error) {
        progress.fail();
        throw new VirtdevError(`Could not merge the ${disk.label} disk: ${_message(error)}`, {
          exitCode: failCode(disk.label),
          hint: "The disk still has its backing file and is intact; run detach again.",
        });
      }
    }
    await _verifyStandalone(plan);
    await writeFileAtomic(plan.paths.generation, `${detachedMarker}\n`);
    return;
  }

  for (const disk of plan.disks) {
    const progress = stage(`Converting the ${disk.label} disk to a standalone image`);
    const copy = `${disk.path}.detach`;
    try {
      await convertStandalone(disk.path, copy);
      crashPoint(`detach.converted-${disk.label}`);
      if (!await checkImage(copy)) throw new Error(`qemu-img check failed on ${basename(copy)}`);
      progress.done();
    } catch (error) {
      progress.fail();
      for (const other of plan.disks) await Deno.remove(`${other.path}.detach`).catch(() => {});
      throw new VirtdevError(`Could not convert the ${disk.label} disk: ${_message(error)}`, {
        exitCode: failCode(disk.label),
        hint: "The project is unchanged. Check free disk space and try again.",
      });
    }
  }
  for (const disk of plan.disks) {
    await Deno.rename(disk.path, `${disk.path}.bak`);
    crashPoint(`detach.backed-up-${disk.label}`);
    await Deno.rename(`${disk.path}.detach`, disk.path);
    crashPoint(`detach.swapped-${disk.label}`);
  }
  await syncDirectory(plan.paths.dir);
  await writeFileAtomic(plan.paths.generation, `${detachedMarker}\n`);
  crashPoint("detach.committed");
  for (const disk of plan.disks) await Deno.remove(`${disk.path}.bak`);
  await _verifyStandalone(plan);
}

async function _verifyStandalone(plan: DetachPlan): Promise<void> {
  for (const disk of plan.disks) {
    const info = await imageInfo(disk.path);
    if (info.backingFile || !await checkImage(disk.path)) {
      throw new VirtdevError(`Verification failed for the ${disk.label} disk: ${disk.path}.`, {
        exitCode: DetachExit.verifyFailed,
        hint: `Run 'qemu-img check ${disk.path}' for details.`,
      });
    }
  }
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
