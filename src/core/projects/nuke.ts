/**
 * Deleting all of virtdev's data, guarded so that a wrong variable can
 * never point it at anything else.
 *
 * @module
 */
import { isAbsolute, relative, resolve } from "../store/path.ts";
import { removeTree } from "../store/remove_tree.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { projectRunState } from "../vm/runtime_state.ts";
import { pathExists, Store } from "../store/store.ts";

/** Exit codes of `nuke`. */
export const NukeExit = { unsafe: 3, running: 4, aborted: 5 } as const;

/** The entries virtdev itself makes at the top of `VIRTDEV_HOME`. */
export const knownHomeEntries: readonly string[] = [
  "lock",
  "ssh",
  "system",
  "system.sealing",
  "system.old",
  "generations",
  "system.old.trash",
  "reseal.journal",
  "installation",
  "maintenance",
  "projects",
  "backups",
  "run",
  "tmp",
];

/** The entries virtdev itself makes at the top of `VIRTDEV_CACHE`. */
export const knownCacheEntries: readonly string[] = ["install-console.log", "virtdev.iso", "iso-build"];

/** Hidden entries virtdev makes: an install in progress, and an atomic write's temporary file. */
const _knownHiddenEntry = /^(\.installation-\d+|\..+\.\d+\.\d+\.tmp)$/;

/** What `nuke` would delete. */
export interface NukePlan {
  /** Directories to delete, each checked to be safe. */
  readonly roots: readonly string[];
}

/**
 * Checks that deleting `VIRTDEV_HOME` and `VIRTDEV_CACHE` touches nothing
 * else: each must resolve to a directory strictly inside the user's home,
 * and hold only what virtdev puts there (hidden entries included), so that
 * a variable pointed at the user's own files never deletes them.
 *
 * @throws {VirtdevError} exit 3 when a root is unsafe, 4 when a VM runs.
 */
export async function planNuke(config: Config): Promise<NukePlan> {
  const roots: string[] = [];
  const known = { VIRTDEV_HOME: knownHomeEntries, VIRTDEV_CACHE: knownCacheEntries };
  for (const [variable, path] of requireRootsInsideHome(config)) {
    if (!await pathExists(path)) continue;
    if ((await Deno.lstat(path)).isSymlink) {
      throw new VirtdevError(`Refusing to delete ${path}: ${variable} is a symbolic link.`, {
        exitCode: NukeExit.unsafe,
        hint: `Point ${variable} at the directory itself.`,
      });
    }
    const strangers: string[] = [];
    for await (const entry of Deno.readDir(path)) {
      if (!known[variable].includes(entry.name) && !_knownHiddenEntry.test(entry.name)) strangers.push(entry.name);
    }
    if (strangers.length > 0) {
      throw new VirtdevError(
        `Refusing to delete ${path} (${variable}): it holds entries virtdev did not make: ${
          strangers.sort().join(", ")
        }.`,
        {
          exitCode: NukeExit.unsafe,
          hint: `Check that ${variable} is right, and move those entries out first. Nothing was deleted.`,
        },
      );
    }
    roots.push(path);
  }
  const store = new Store(config.home);
  for (const name of await store.listProjects()) {
    if (await projectRunState(store, name) !== "stopped") {
      throw new VirtdevError(`Project ${name} is running.`, {
        exitCode: NukeExit.running,
        hint: `Stop every project VM first: virtdev stop ${name}`,
      });
    }
  }
  return { roots };
}

/**
 * Checks, without touching the disk, that `VIRTDEV_HOME` and
 * `VIRTDEV_CACHE` lie strictly inside the user's home. Run it before taking
 * the lock, which would otherwise create a lock file wherever they point.
 *
 * @returns the roots with the variables that name them.
 * @throws {VirtdevError} exit 3 naming the variable.
 */
export function requireRootsInsideHome(
  config: Config,
): readonly (readonly ["VIRTDEV_HOME" | "VIRTDEV_CACHE", string])[] {
  const userHome = resolve(config.userHome);
  const roots = [["VIRTDEV_HOME", config.home], ["VIRTDEV_CACHE", config.cache]] as const;
  for (const [variable, path] of roots) {
    // Checked on the path as written: virtdev may not read outside its own
    // directories, so the user's home itself is never resolved.
    const inside = relative(userHome, resolve(path));
    if (inside === "" || inside === ".." || inside.startsWith("../") || isAbsolute(inside)) {
      throw new VirtdevError(`Refusing to delete ${path}: ${variable} is not inside your home directory.`, {
        exitCode: NukeExit.unsafe,
        hint: `Nuke deletes only directories below ${config.userHome}. Delete this one by hand if you mean it.`,
      });
    }
  }
  return roots;
}

/** Deletes the roots of `plan`. Symbolic links inside are removed, never followed. */
export async function executeNuke(plan: NukePlan): Promise<void> {
  for (const root of plan.roots) {
    await removeTree(root);
  }
}
