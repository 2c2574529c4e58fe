/**
 * A project's own VM size (`virtdev set`): kept in the project, applied at
 * each start; where a setting is absent the configuration's default
 * (VIRTDEV_VM_CPUS, VIRTDEV_VM_MEMORY) applies.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { type Config, parseVmCpus, parseVmMemory } from "../store/config.ts";
import { ConfigError, VirtdevError } from "../store/errors.ts";
import { type ProjectPaths, readOptionalText } from "../store/store.ts";

/** What a project sets for itself. */
export interface ProjectSettings {
  readonly cpus?: number;
  readonly memoryMiB?: number;
}

/** The settings `set` knows, as typed on its command line. */
export const settingNames = ["cpus", "memory"] as const;

/** Exit codes of `set`. */
export const SetExit = { invalid: 7 } as const;

/** Reads a project's settings; none when it has set nothing. */
export async function readProjectSettings(paths: ProjectPaths): Promise<ProjectSettings> {
  const text = await readOptionalText(paths.settings);
  if (text === undefined) return {};
  try {
    const value = JSON.parse(text);
    const cpus = Number.isSafeInteger(value?.cpus) && value.cpus > 0 ? value.cpus : undefined;
    const memoryMiB = Number.isSafeInteger(value?.memoryMiB) && value.memoryMiB > 0 ? value.memoryMiB : undefined;
    return { ...(cpus ? { cpus } : {}), ...(memoryMiB ? { memoryMiB } : {}) };
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new VirtdevError(`The settings of ${paths.name} are unreadable: ${paths.settings}.`, {
      exitCode: 70,
      hint: `Set them again: virtdev set ${paths.name} cpus=N memory=SIZE`,
    });
  }
}

/**
 * Applies `assignments` (`cpus=2`, `memory=4G`; an empty value, `cpus=`,
 * returns to the default) to the project's settings and keeps them.
 *
 * @throws {VirtdevError} exit 7 for an unknown name or a bad value.
 */
export async function updateProjectSettings(
  paths: ProjectPaths,
  assignments: readonly string[],
): Promise<ProjectSettings> {
  let next: { cpus?: number; memoryMiB?: number } = { ...await readProjectSettings(paths) };
  for (const assignment of assignments) {
    const equals = assignment.indexOf("=");
    const name = equals === -1 ? assignment : assignment.slice(0, equals);
    const value = equals === -1 ? undefined : assignment.slice(equals + 1);
    if (value === undefined || !(settingNames as readonly string[]).includes(name)) {
      throw new VirtdevError(`Not a setting: '${assignment}'.`, {
        exitCode: SetExit.invalid,
        hint: "Settings are cpus=N and memory=SIZE (MiB, or a size such as 2G); 'cpus=' returns to the default.",
      });
    }
    try {
      if (name === "cpus") {
        next = value === "" ? { ...next, cpus: undefined } : { ...next, cpus: parseVmCpus(value, "cpus") };
      } else {next = value === ""
          ? { ...next, memoryMiB: undefined }
          : { ...next, memoryMiB: parseVmMemory(value, "memory") };}
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new VirtdevError(error.message, { exitCode: SetExit.invalid, hint: error.hints });
    }
  }
  const kept = {
    ...(next.cpus === undefined ? {} : { cpus: next.cpus }),
    ...(next.memoryMiB === undefined ? {} : { memoryMiB: next.memoryMiB }),
  };
  await writeFileAtomic(paths.settings, `${JSON.stringify(kept)}\n`);
  return kept;
}

/** The VM size a start uses: the project's settings over the configuration's defaults. */
export function effectiveVmSize(
  config: Pick<Config, "vmCpus" | "vmMemoryMiB">,
  settings: ProjectSettings,
): { readonly vmCpus: number; readonly vmMemoryMiB: number } {
  return { vmCpus: settings.cpus ?? config.vmCpus, vmMemoryMiB: settings.memoryMiB ?? config.vmMemoryMiB };
}
