/**
 * `move`: renames a stopped project, its backups and its configuration as
 * one operation. A journal (`move.journal` in the store) names the move
 * before anything changes; every step is a rename or a rewrite that can
 * run twice, so a move cut short anywhere is finished by the next command
 * that takes the store lock. The old name may be one only the original
 * tool allowed, so that its users can bring such projects over.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { VirtdevError } from "../store/errors.ts";
import { join } from "../store/path.ts";
import { pathExists, readOptionalText, type Store, validateProjectName } from "../store/store.ts";
import { hostKeyAlias } from "../guest/host_key.ts";
import { requireProject, requireStopped, validateNewProjectName } from "./project.ts";

/** Exit codes of `move`. */
export const MoveExit = { running: 4, exists: 6 } as const;

export interface MoveRecord {
  readonly from: string;
  readonly to: string;
}

function _journalPath(store: Store): string {
  return join(store.root, "move.journal");
}

function _configDir(configDir: string, name: string): string {
  return join(configDir, "projects", name);
}

/**
 * Renames project `from` to `to`: its directory, its backups (and the
 * project marker of each snapshot), its configuration directory and its
 * host-key pin. The hostname follows at the next boot. Call under the
 * store lock.
 */
export async function moveProject(
  store: Store,
  from: string,
  to: string,
  options: { readonly configDir: string },
): Promise<void> {
  validateProjectName(from, { legacy: true });
  validateNewProjectName(to);
  await requireProject(store, from, { legacy: true });
  await requireStopped(store, from, MoveExit.running, { what: "move it" });
  for (
    const [what, path] of [
      ["A project", store.project(to).dir],
      ["Backups", store.backups(to)],
      ["A configuration directory", _configDir(options.configDir, to)],
    ] as const
  ) {
    if (await pathExists(path)) {
      throw new VirtdevError(`${what} named ${to} already exists: ${path}.`, {
        exitCode: MoveExit.exists,
        hint: "Choose another name, or remove it first.",
      });
    }
  }
  await writeFileAtomic(_journalPath(store), `${JSON.stringify({ from, to })}\n`);
  crashPoint("move.journalled");
  await _carryOut(store, { from, to }, options.configDir);
}

/**
 * Finishes a move that was cut short, if the journal names one. Call under
 * the store lock.
 *
 * @returns the move finished, if any.
 */
export async function finishInterruptedMove(
  store: Store,
  options: { readonly configDir: string },
): Promise<MoveRecord | undefined> {
  const text = await readOptionalText(_journalPath(store));
  if (text === undefined) return undefined;
  let journal: MoveRecord | undefined;
  try {
    const value = JSON.parse(text);
    if (typeof value?.from === "string" && typeof value?.to === "string") journal = value;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  // A journal that names no move (half-written by a crash) means none began.
  if (journal === undefined) {
    await Deno.remove(_journalPath(store));
    return undefined;
  }
  await _carryOut(store, journal, options.configDir);
  return journal;
}

async function _carryOut(store: Store, journal: MoveRecord, configDir: string): Promise<void> {
  const { from, to } = journal;
  await _renameOnce(store.project(from).dir, store.project(to).dir);
  crashPoint("move.project-renamed");
  await _renameOnce(store.backups(from), store.backups(to));
  crashPoint("move.backups-renamed");
  await _rewriteMarkers(store.backups(to), from, to);
  crashPoint("move.markers-rewritten");
  await _renameOnce(_configDir(configDir, from), _configDir(configDir, to));
  crashPoint("move.config-renamed");
  await _repin(store.project(to).knownHosts, to);
  await Deno.remove(_journalPath(store));
}

/** Renames `from` to `to` unless that was done already (or there is nothing to rename). */
async function _renameOnce(from: string, to: string): Promise<void> {
  if (!await pathExists(from) || await pathExists(to)) return;
  await Deno.rename(from, to);
}

/** Each backup snapshot names its project; restore checks it. */
async function _rewriteMarkers(backups: string, from: string, to: string): Promise<void> {
  let days: Deno.DirEntry[];
  try {
    days = await Array.fromAsync(Deno.readDir(backups));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const day of days) {
    if (!day.isDirectory) continue;
    for await (const snapshot of Deno.readDir(join(backups, day.name))) {
      const marker = join(backups, day.name, snapshot.name, "project");
      if (!snapshot.isDirectory) continue;
      const info = await Deno.lstat(marker).catch(() => undefined);
      if (info?.isFile && (await Deno.readTextFile(marker)).trim() === from) {
        await writeFileAtomic(marker, `${to}\n`);
      }
    }
  }
}

/** Pins the project's host key under its new alias (the key stays), whatever alias it had. */
async function _repin(knownHosts: string, to: string): Promise<void> {
  const text = await readOptionalText(knownHosts);
  if (text === undefined) return;
  const lines = text.split("\n").map((line) => line.trim() === "" ? line : line.replace(/^\S+/, hostKeyAlias(to)));
  await writeFileAtomic(knownHosts, lines.join("\n"));
}
