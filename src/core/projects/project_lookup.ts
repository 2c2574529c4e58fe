/**
 * Finding a project by name, for every command: the name rule, whether it
 * exists, whether its VM is stopped. Apart from project.ts (create,
 * destroy, detach), so that a command that only looks pays for no more.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import {
  isLegacyProjectName,
  maintenanceVmName,
  pathExists,
  type ProjectPaths,
  reservedNames,
  type Store,
  validateProjectName,
} from "../store/store.ts";

/** Exit code for a project that does not exist; the same for every command. */
export const projectMissingExitCode = 3;

/**
 * Validates `name` and checks that the project exists.
 *
 * @throws {InvalidNameError} exit 2 for a bad name.
 * @throws {VirtdevError} exit 3 when there is no such project.
 */
export async function requireProject(
  store: Store,
  name: string,
  options: { readonly legacy?: boolean } = {},
): Promise<ProjectPaths> {
  validateProjectName(name, options);
  const paths = store.project(name);
  let isDirectory = false;
  try {
    isDirectory = (await Deno.stat(paths.dir)).isDirectory;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!isDirectory || (reservedNames.includes(name) && !(options.legacy && isLegacyProjectName(name)))) {
    throw new VirtdevError(`No such project: ${name}.`, {
      exitCode: projectMissingExitCode,
      hint: `List projects with 'virtdev list', or create it with 'virtdev create ${name}'.`,
    });
  }
  return paths;
}

/**
 * The paths of a VM a user may reach: a project, or the maintenance VM
 * while a `maintain` session has it.
 *
 * @throws {VirtdevError} exit 3 when there is no such project or session.
 */
export async function requireVmPaths(
  store: Store,
  name: string,
  options: { readonly legacy?: boolean } = {},
): Promise<ProjectPaths> {
  if (name !== maintenanceVmName) return await requireProject(store, name, options);
  const paths = store.maintenanceVm();
  if (!await pathExists(paths.dir)) {
    throw new VirtdevError("No maintenance session is in progress.", {
      exitCode: projectMissingExitCode,
      hint: "Start one with 'virtdev maintain'.",
    });
  }
  return paths;
}
