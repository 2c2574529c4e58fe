/**
 * The reseal: `maintenance/` becomes the base and the old base goes, so
 * that a crash at any point leaves one whole base, old or new, and the
 * next `maintain`, `start` or `create` finishes the swap.
 *
 * A journal of renames, not renameat2(RENAME_EXCHANGE): the exchange would
 * need Deno's FFI, which is a grant to run any native code and would void
 * the permission sandbox virtdev runs in. The journal is written before the
 * first rename and removed after the last, and every state in between has
 * one way forward:
 *
 * 1. `maintenance/` is made complete first: its disks checked, the new
 *    generation written into it, everything read-only. A generation file
 *    always lives in the directory of the disks it describes.
 * 2. Projects still on the old base get it kept under `generations/<n>/`
 *    (see `kept_generations.ts`); their deltas point there from now on.
 * 3. `reseal.journal` names the old and new generations.
 * 4. `system/` → `system.old/`.
 * 5. `maintenance/` → `system/`.
 * 6. The journal goes (the commit), then `system.old/` and every kept
 *    generation no project uses any more.
 *
 * Recovery rolls forward whenever the new base is there whole, and back
 * (renaming `system.old/` home) only when it is not.
 *
 * @module
 */
import { join } from "../store/path.ts";
import { syncDirectory, writeFileAtomic } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { readOnlyFileMode } from "../store/file_modes.ts";
import { isBaseAt, readGeneration } from "../store/generation.ts";
import { collectGenerations, keepBaseFor, projectsOnBase } from "./kept_generations.ts";
import { baseFileNames, pathExists, readOptionalText, type Store } from "../store/store.ts";

/** Exit codes of a reseal. */
export const ResealExit = { generationCorrupt: 15, generationOverflow: 28 } as const;

/** What the journal holds. */
interface _Journal {
  readonly from: string;
  readonly to: string;
}

/** The old base's name during a swap. */
function _oldBase(store: Store): string {
  return join(store.root, "system.old");
}

/**
 * The generation after `current`.
 *
 * @throws {VirtdevError} 15 when the base's generation is not a number, 28
 *   when it cannot be counted up exactly.
 */
export async function nextGeneration(store: Store): Promise<{ readonly from: string; readonly to: string }> {
  const current = await readGeneration(store.base.generation);
  if (current.kind !== "number") {
    throw new VirtdevError(`The base generation is unreadable: ${store.base.generation}.`, {
      exitCode: ResealExit.generationCorrupt,
      hint: "The base is damaged; install and seal it again.",
    });
  }
  const value = BigInt(current.value);
  // Compared as numbers everywhere, so it must stay exact in a double.
  if (value >= BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VirtdevError(`The base generation ${current.value} cannot be counted up any further.`, {
      exitCode: ResealExit.generationOverflow,
      hint: "Install and seal a new base.",
    });
  }
  return { from: current.value, to: String(value + 1n) };
}

/**
 * Swaps the prepared `maintenance/` in as the base at generation `to`.
 * Call under the store lock, with no project VM running.
 */
export async function swapInMaintenance(
  store: Store,
  generations: { readonly from: string; readonly to: string },
): Promise<void> {
  const fresh = store.maintenance;
  await writeFileAtomic(fresh.generation, `${generations.to}\n`, { mode: readOnlyFileMode });
  for (const file of baseFileNames) await Deno.chmod(join(fresh.dir, file), readOnlyFileMode);
  crashPoint("reseal.prepared");
  await keepBaseFor(store, generations.from, await projectsOnBase(store, generations.from));
  const journal: _Journal = generations;
  await writeFileAtomic(store.resealJournal, `${JSON.stringify(journal)}\n`);
  await syncDirectory(store.root);
  crashPoint("reseal.journal-written");
  await Deno.rename(store.base.dir, _oldBase(store));
  crashPoint("reseal.old-moved");
  await Deno.rename(fresh.dir, store.base.dir);
  await syncDirectory(store.root);
  crashPoint("reseal.new-moved");
  await Deno.remove(store.resealJournal);
  await syncDirectory(store.root);
  crashPoint("reseal.committed");
  await Deno.remove(_oldBase(store), { recursive: true });
  await collectGenerations(store);
}

/** What a recovery did, for the user. */
export type ResealRecovery = "none" | "finished" | "rolled back" | "cleaned";

/**
 * Finishes or rolls back a reseal that was interrupted. Call under the
 * store lock before anything reads the base.
 */
export async function recoverReseal(store: Store): Promise<ResealRecovery> {
  const old = _oldBase(store);
  const journalText = await readOptionalText(store.resealJournal);
  if (journalText === undefined) {
    // A committed reseal that died before removing the old base.
    if (!await pathExists(old)) return "none";
    await Deno.remove(old, { recursive: true });
    return "cleaned";
  }
  const journal = _parseJournal(journalText, store);
  let outcome: ResealRecovery;
  if (await pathExists(store.base.dir) && await isBaseAt(store.base, journal.to)) {
    // The new base is in place: only the commit was missing.
    outcome = "finished";
  } else if (await isBaseAt(store.maintenance, journal.to)) {
    if (await pathExists(store.base.dir)) await Deno.rename(store.base.dir, old);
    await Deno.rename(store.maintenance.dir, store.base.dir);
    outcome = "finished";
  } else {
    // The new base is not whole: the old one goes back.
    if (!await pathExists(store.base.dir) && await pathExists(old)) await Deno.rename(old, store.base.dir);
    outcome = "rolled back";
  }
  await syncDirectory(store.root);
  await Deno.remove(store.resealJournal);
  await syncDirectory(store.root);
  if (await pathExists(old)) await Deno.remove(old, { recursive: true });
  await collectGenerations(store);
  return outcome;
}

/**
 * The journal's record. It is written whole (a temporary file, then a
 * rename), so one that does not read was damaged afterwards: nothing can
 * say which base is whole, and the person has to look.
 *
 * @throws {VirtdevError} exit 74, naming the journal and both bases.
 */
function _parseJournal(text: string, store: Store): _Journal {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const record = value as Partial<_Journal> | undefined;
  if (typeof record?.from === "string" && typeof record?.to === "string") return record as _Journal;
  throw new VirtdevError(`The journal of an interrupted reseal is damaged: ${store.resealJournal}.`, {
    exitCode: ExitCode.damagedJournal,
    hint: [
      `If ${store.base.dir} holds a whole base (${
        baseFileNames.join(", ")
      }), remove the journal and run the command again.`,
      `If not, and ${_oldBase(store)} does, put that back first: mv ${_oldBase(store)} ${store.base.dir}`,
    ],
  });
}

/** The message for a recovery, or `undefined` when there was nothing to do. */
export function describeRecovery(recovery: ResealRecovery): string | undefined {
  switch (recovery) {
    case "finished":
      return "Found an interrupted reseal and finished it: the new base is in place.";
    case "rolled back":
      return "Found an interrupted reseal whose new base was incomplete: the old base is back in place.";
    case "cleaned":
      return "Removed the old base a finished reseal had left behind.";
    case "none":
      return undefined;
  }
}
