/**
 * The generation counter: the base's is bumped on every reseal, a project's
 * is a copy taken at create (or `detached`). A project boots only on the
 * base generation it was made from.
 *
 * @module
 */
import { join } from "./path.ts";
import { baseFileNames, type BasePaths, pathExists, readOptionalText } from "./store.ts";

/** A generation file as read. */
export type Generation =
  | { readonly kind: "missing" }
  | { readonly kind: "number"; readonly value: string }
  | { readonly kind: "detached" }
  | { readonly kind: "corrupt"; readonly raw: string };

/** The text written for a detached project. */
export const detachedMarker = "detached";

/** Parses the content of a generation file. */
export function parseGeneration(text: string | undefined): Generation {
  if (text === undefined) return { kind: "missing" };
  const value = text.replace(/\n$/, "");
  if (/^[0-9]+$/.test(value)) return { kind: "number", value };
  if (value === detachedMarker) return { kind: "detached" };
  return { kind: "corrupt", raw: value };
}

/** Reads the generation file at `path`. */
export async function readGeneration(path: string): Promise<Generation> {
  return parseGeneration(await readOptionalText(path));
}

/** The generation as shown to people: the number, `detached`, `-` or `?`. */
export function describeGeneration(generation: Generation): string {
  switch (generation.kind) {
    case "missing":
      return "-";
    case "number":
      return generation.value;
    case "detached":
      return detachedMarker;
    case "corrupt":
      return "?";
  }
}

/**
 * Whether a project needs rebuilding on the current base: a detached
 * project never does; a missing, corrupt or different generation does.
 */
export function isStale(project: Generation, base: Generation): boolean {
  if (project.kind === "detached") return false;
  if (project.kind !== "number" || base.kind !== "number") return true;
  return project.value !== base.value;
}

/** Whether `base` holds all its files, at generation `generation`. */
export async function isBaseAt(base: BasePaths, generation: string): Promise<boolean> {
  for (const file of baseFileNames) {
    if (!await pathExists(join(base.dir, file))) return false;
  }
  const found = await readGeneration(base.generation);
  return found.kind === "number" && found.value === generation;
}
