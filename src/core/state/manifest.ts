/**
 * The backup manifest: which paths under `/home/dev` a backup keeps. The
 * project-local file wins over the one in the user's configuration. One
 * path per line, relative to `/home/dev`; `#` comments and blank lines are
 * allowed. Directories are copied with everything below them.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { Config } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { pathExists, readOptionalText, type Store } from "../store/store.ts";

/** Exit codes of manifest problems, as `backup` uses them. */
export const ManifestExit = { missing: 8, empty: 9, absolute: 15, malformed: 16 } as const;

/** The manifest paths checked for `project`, in order of precedence. */
export function manifestCandidates(store: Store, config: Pick<Config, "configDir">, project: string): string[] {
  return [store.project(project).manifest, join(config.configDir, "projects", project, "manifest")];
}

/** The manifest in force for `project`, or `undefined` when there is none. */
export async function resolveManifestPath(
  store: Store,
  config: Pick<Config, "configDir">,
  project: string,
): Promise<string | undefined> {
  for (const candidate of manifestCandidates(store, config, project)) {
    if (await pathExists(candidate)) return candidate;
  }
  return undefined;
}

/** One problem with one manifest line. */
export interface ManifestProblem {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

/** Checks one entry; returns why it is refused, or `undefined`. */
function _entryProblem(entry: string): { readonly reason: string; readonly absolute?: true } | undefined {
  // deno-lint-ignore no-control-regex -- refusing control characters is the point.
  if (/[\x00-\x1f\x7f]/.test(entry)) return { reason: "contains a control character" };
  if (entry !== entry.trim()) return { reason: "has leading or trailing whitespace" };
  if (entry.startsWith("/")) return { reason: "is absolute (paths are relative to /home/dev)", absolute: true };
  if (entry.split("/").includes("..")) return { reason: "has a '..' component" };
  return undefined;
}

/**
 * Parses manifest text into its entries.
 *
 * @throws {VirtdevError} exit 15 when an entry is absolute, 16 when one is
 *   otherwise malformed (every bad line is named), 9 when there are none.
 */
export function parseManifest(text: string, source: string): string[] {
  const entries: string[] = [];
  const problems: (ManifestProblem & { readonly absolute?: true })[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "" || line.startsWith("#")) return;
    const problem = _entryProblem(line);
    if (problem) problems.push({ line: index + 1, text: JSON.stringify(line), ...problem });
    else entries.push(line.replace(/\/+$/, "") || ".");
  });
  if (problems.length > 0) {
    const absolute = problems.every((problem) => problem.absolute);
    throw new VirtdevError(
      `The manifest ${source} has ${problems.length === 1 ? "a bad line" : `${problems.length} bad lines`}:\n${
        problems.map((p) => `  line ${p.line}: ${p.text} ${p.reason}`).join("\n")
      }`,
      {
        exitCode: absolute ? ManifestExit.absolute : ManifestExit.malformed,
        hint:
          "Each line is one path relative to /home/dev, such as 'src' or '.config/app'. Lines starting with # are comments.",
      },
    );
  }
  if (entries.length === 0) {
    throw new VirtdevError(`The manifest ${source} lists no paths.`, {
      exitCode: ManifestExit.empty,
      hint: "Add one path per line, relative to /home/dev.",
    });
  }
  return entries;
}

/** The manifest in force for `project`, parsed. */
export interface Manifest {
  readonly path: string;
  readonly text: string;
  readonly entries: readonly string[];
}

/**
 * Resolves, reads and parses `project`'s manifest.
 *
 * @throws {VirtdevError} exit 8 when there is none (both places are
 *   named), or the codes of {@link parseManifest}.
 */
export async function loadManifest(
  store: Store,
  config: Pick<Config, "configDir">,
  project: string,
): Promise<Manifest> {
  const path = await resolveManifestPath(store, config, project);
  const text = path === undefined ? undefined : await readOptionalText(path);
  if (path === undefined || text === undefined) {
    throw new VirtdevError(`Project ${project} has no backup manifest.`, {
      exitCode: ManifestExit.missing,
      hint: [
        "Write one path per line (relative to /home/dev) to either of:",
        ...manifestCandidates(store, config, project).map((candidate) => `  ${candidate}`),
      ],
    });
  }
  return { path, text, entries: parseManifest(text, path) };
}
