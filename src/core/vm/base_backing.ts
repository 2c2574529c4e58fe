/**
 * Which base a project's deltas are written over: the backing links in
 * their headers, against the current base and the kept generations.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { BasePaths, ProjectPaths } from "../store/store.ts";
import { qcow2BackingFile } from "./qcow2_overlay.ts";

/** The backing links of a project's two deltas. */
export interface DeltaBackings {
  /** As recorded; `undefined`: none, or no image. */
  readonly system: string | undefined;
  readonly home: string | undefined;
}

/** The backing links of a project's two deltas, read from their headers. */
export async function deltaBackings(paths: Pick<ProjectPaths, "systemImage" | "homeImage">): Promise<DeltaBackings> {
  const read = async (path: string) => {
    try {
      return await qcow2BackingFile(path);
    } catch (error) {
      // A half-built project directory may hold neither image, or something else under its name.
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) return undefined;
      throw error;
    }
  };
  return { system: await read(paths.systemImage), home: await read(paths.homeImage) };
}

/** Whether both deltas are written over the files of one of `bases`. */
export async function backsOntoOneOf(
  paths: Pick<ProjectPaths, "systemImage" | "homeImage">,
  bases: readonly BasePaths[],
): Promise<boolean> {
  const backings = await deltaBackings(paths);
  return bases.some((base) =>
    backings.system === join(base.dir, "system.qcow2") && backings.home === join(base.dir, "home.qcow2")
  );
}
