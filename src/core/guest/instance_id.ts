/**
 * A project's instance id: random, made when its disks are (create, clone),
 * passed to the guest by fw_cfg at each boot. The guest gives itself a new
 * machine-id when the id differs from the one it last saw, so no two
 * projects (nor a project and its clone) share one, though all come from
 * the same base.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { join } from "../store/path.ts";
import { pathExists, type ProjectPaths } from "../store/store.ts";

/** Writes a new instance id into project directory `dir`. */
export async function writeInstanceId(dir: string): Promise<void> {
  await writeFileAtomic(join(dir, "instance"), `${crypto.randomUUID()}\n`);
}

/** Makes the project's instance id unless it has one (projects made before it existed). */
export async function ensureInstanceId(paths: ProjectPaths): Promise<void> {
  if (!await pathExists(paths.instance)) await writeInstanceId(paths.dir);
}
