/**
 * One line of facts per project, as `list` and `status` show them.
 *
 * @module
 */
import { describeGeneration, type Generation, isStale, readGeneration } from "../store/generation.ts";
import { inspectVm, type RunState } from "../vm/runtime_state.ts";
import type { Store } from "../store/store.ts";
import type { Config } from "../store/config.ts";
import { type KeptGeneration, listKeptGenerations } from "../base/kept_generations.ts";
import { effectiveVmSize, readProjectSettings } from "./settings.ts";

/** What `list` shows of a project. */
export interface ProjectSummary {
  readonly name: string;
  readonly status: RunState;
  readonly port: number | null;
  readonly generation: string;
  readonly detached: boolean;
  readonly stale: boolean;
  /** A QEMU virtdev did not start runs on its disks. */
  readonly startedElsewhere: boolean;
  /** A name the original tool allowed and this one refuses: rename it with `move`. */
  readonly legacyName: boolean;
  /** The VM size its next start uses (`virtdev set`, else the defaults). */
  readonly cpus: number;
  readonly memoryMiB: number;
  /** The kept base generation a stale project's deltas are written over, or `null` (see `gc`). */
  readonly keptBase: { readonly generation: string; readonly dir: string; readonly bytes: number } | null;
}

/** Summarises every project, and the base generation. */
export async function summariseProjects(
  store: Store,
  config: Pick<Config, "vmCpus" | "vmMemoryMiB">,
): Promise<{ readonly base: Generation; readonly projects: ProjectSummary[] }> {
  const base = await readGeneration(store.base.generation);
  const legacy = new Set(await store.listLegacyProjects());
  const names = [...await store.listProjects(), ...legacy].sort();
  const kept = new Map<string, KeptGeneration>();
  for (const generation of await listKeptGenerations(store)) {
    for (const user of generation.projects) kept.set(user, generation);
  }
  const projects = await Promise.all(names.map(async (name) => {
    const paths = store.project(name);
    const generation = await readGeneration(paths.generation);
    const vm = await inspectVm(paths, { foreign: "hints" });
    const size = effectiveVmSize(config, await readProjectSettings(paths));
    const status = vm.state;
    const port = vm.record?.port ?? null;
    return {
      name,
      status,
      port,
      generation: describeGeneration(generation),
      detached: generation.kind === "detached",
      stale: isStale(generation, base),
      startedElsewhere: vm.foreign ?? false,
      legacyName: legacy.has(name),
      cpus: size.vmCpus,
      memoryMiB: size.vmMemoryMiB,
      keptBase: _keptBase(kept.get(name)),
    };
  }));
  return { base, projects };
}

function _keptBase(kept: KeptGeneration | undefined): ProjectSummary["keptBase"] {
  return kept ? { generation: kept.generation, dir: kept.dir, bytes: kept.bytes } : null;
}
