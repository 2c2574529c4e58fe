/**
 * Kept base generations: a reseal must not take a base away from the
 * projects whose deltas are written over it, or their data could be read
 * only through a base it was not made on (which corrupts it unseen).
 *
 * Before the swap, the old base's files are hard-linked under
 * `generations/<n>/` (the same bytes under a second name), and each project
 * still on it has its deltas' backing links pointed there, a header-only
 * rewrite. Every step leaves every project bootable: until the swap both
 * names hold the same base, and the swap's journal is written only once all
 * projects point at the kept name. So the steps need no journal of their
 * own: a crash between them is finished by the next reseal, and a kept base
 * that no project points at is removed by {@link collectGenerations}.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { crashPoint } from "../store/crash_point.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { syncDirectory } from "../store/atomic_write.ts";
import { ensurePrivateDirectory } from "../store/file_modes.ts";
import { isBaseAt, readGeneration } from "../store/generation.ts";
import { removeTree } from "../store/remove_tree.ts";
import { allocatedBytes } from "../store/disk_usage.ts";
import { baseFileNames, type BasePaths, pathExists, type Store } from "../store/store.ts";
import { type DeltaBackings, deltaBackings } from "../vm/base_backing.ts";
import { repointBacking } from "../vm/images.ts";

/** A kept base generation, as `disk` and `list --json` show it. */
export interface KeptGeneration {
  /** The generation number. */
  readonly generation: string;
  /** Its directory. */
  readonly dir: string;
  /** The projects whose deltas are written over it, sorted. */
  readonly projects: readonly string[];
  /** The bytes its files occupy (shared with nothing once the base moved on). */
  readonly bytes: number;
}

/**
 * The projects on base generation `generation` whose deltas are written
 * over the current base's files, the ones a reseal to another generation
 * would strand.
 */
export async function projectsOnBase(store: Store, generation: string): Promise<string[]> {
  const users: string[] = [];
  for (const name of await store.listProjects()) {
    const paths = store.project(name);
    const found = await readGeneration(paths.generation);
    if (found.kind !== "number" || found.value !== generation) continue;
    if (_backsOnto(await deltaBackings(paths), store.base)) users.push(name);
  }
  return users;
}

/**
 * Keeps the current base (generation `generation`) for `projects`: links
 * its files under `generations/<generation>/` and points the projects'
 * deltas there. Call under the store lock, with no project VM running,
 * before the reseal's journal is written. Idempotent.
 */
export async function keepBaseFor(
  store: Store,
  generation: string,
  projects: readonly string[],
): Promise<BasePaths | undefined> {
  if (projects.length === 0) return undefined;
  const kept = store.keptBase(generation);
  if (await pathExists(kept.dir) && !await _isLinkOf(kept, store.base)) {
    // A base installed again restarts at generation 1: an older base kept under that number is another one.
    const users = _usersOf(await _allBackings(store), kept);
    if (users.length > 0) {
      throw new VirtdevError(
        `Cannot keep the base at generation ${generation}: ${kept.dir} holds another base of that number, still used by ${
          users.join(", ")
        }.`,
        {
          exitCode: ExitCode.failure,
          hint: [
            `Save or rebuild those projects first (virtdev start --stale, backup, recreate), or detach them.`,
            "The base is unchanged.",
          ],
        },
      );
    }
    await removeTree(kept.dir);
  }
  if (!await isBaseAt(kept, generation)) {
    await ensurePrivateDirectory(store.generationsDir);
    // Built aside and renamed in whole, so a kept base is never half there.
    const building = join(store.generationsDir, `.keeping-${generation}`);
    await removeTree(building);
    await ensurePrivateDirectory(building);
    for (const file of [...baseFileNames, "generation"]) {
      await Deno.link(join(store.base.dir, file), join(building, file));
    }
    await syncDirectory(building);
    if (await pathExists(kept.dir)) await removeTree(kept.dir);
    await Deno.rename(building, kept.dir);
    await syncDirectory(store.generationsDir);
  }
  crashPoint("keep.linked");
  for (const name of projects) {
    const paths = store.project(name);
    const backings = await deltaBackings(paths);
    for (
      const [backing, delta, current, keptFile] of [
        [backings.system, paths.systemImage, store.base.systemImage, kept.systemImage],
        [backings.home, paths.homeImage, store.base.homeImage, kept.homeImage],
      ] as const
    ) {
      if (backing === current) {
        await repointBacking(delta, keptFile);
        crashPoint("keep.repointed-one");
      }
    }
  }
  return kept;
}

/**
 * Removes every kept generation no project's delta is written over, and
 * what an interrupted {@link keepBaseFor} left aside. Call under the store
 * lock. Returns the generations removed.
 */
export async function collectGenerations(store: Store): Promise<string[]> {
  const removed: string[] = [];
  const all = await _allBackings(store);
  for (const entry of await _entries(store.generationsDir)) {
    const dir = join(store.generationsDir, entry);
    if (!/^[0-9]+$/.test(entry)) {
      if (entry.startsWith(".keeping-")) await removeTree(dir);
      continue;
    }
    if (_usersOf(all, store.keptBase(entry)).length > 0) continue;
    await removeTree(dir);
    removed.push(entry);
  }
  return removed.sort((a, b) => Number(a) - Number(b));
}

/** The kept generations, oldest first, with their users and size. */
export async function listKeptGenerations(store: Store): Promise<KeptGeneration[]> {
  const kept: KeptGeneration[] = [];
  const entries = (await _entries(store.generationsDir)).filter((entry) => /^[0-9]+$/.test(entry));
  // Every project's backing links are read once, whatever the number of generations.
  const all = entries.length === 0 ? [] : await _allBackings(store);
  for (const entry of entries) {
    const base = store.keptBase(entry);
    kept.push({
      generation: entry,
      dir: base.dir,
      projects: _usersOf(all, base),
      bytes: await allocatedBytes(base.dir),
    });
  }
  return kept.sort((a, b) => Number(a.generation) - Number(b.generation));
}

/** Every project directory's backing links, hidden ones (projects being created, cloned or moved) included. */
async function _allBackings(store: Store): Promise<{ readonly name: string; readonly backings: DeltaBackings }[]> {
  const all = [];
  for (const name of await _entries(store.projectsDir)) {
    const dir = join(store.projectsDir, name);
    all.push({
      name,
      backings: await deltaBackings({ systemImage: join(dir, "system.qcow2"), homeImage: join(dir, "home.qcow2") }),
    });
  }
  return all;
}

/** The names among `all` with a delta written over `base`, sorted. */
function _usersOf(
  all: readonly { readonly name: string; readonly backings: DeltaBackings }[],
  base: BasePaths,
): string[] {
  return all.filter(({ backings }) => _backsOnto(backings, base)).map(({ name }) => name).sort();
}

/** Whether either delta is written over `base`. */
function _backsOnto(backings: DeltaBackings, base: BasePaths): boolean {
  return backings.system === base.systemImage || backings.home === base.homeImage;
}

/** Whether every file of `kept` is the same file as `base`'s (a hard link, not a copy of another base). */
async function _isLinkOf(kept: BasePaths, base: BasePaths): Promise<boolean> {
  for (const file of [...baseFileNames, "generation"]) {
    try {
      const [a, b] = [await Deno.stat(join(kept.dir, file)), await Deno.stat(join(base.dir, file))];
      if (a.ino !== b.ino || a.dev !== b.dev) return false;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }
  return true;
}

async function _entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isDirectory) names.push(entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return names;
}
