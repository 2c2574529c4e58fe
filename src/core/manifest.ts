/**
 * Where a project's backup manifest lives: the project-local file wins over
 * the one in the user's configuration.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "./config.ts";
import { pathExists, type Store } from "./store.ts";

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
