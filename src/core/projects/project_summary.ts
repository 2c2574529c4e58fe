/**
 * One line of facts per project, as `list` and `status` show them.
 *
 * @module
 */
import { describeGeneration, type Generation, isStale, readGeneration } from "../store/generation.ts";
import { inspectVm, type RunState } from "../vm/runtime_state.ts";
import type { Store } from "../store/store.ts";

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
}

/** Summarises every project, and the base generation. */
export async function summariseProjects(
  store: Store,
): Promise<{ readonly base: Generation; readonly projects: ProjectSummary[] }> {
  const base = await readGeneration(store.base.generation);
  const legacy = new Set(await store.listLegacyProjects());
  const names = [...await store.listProjects(), ...legacy].sort();
  const projects = await Promise.all(names.map(async (name) => {
    const paths = store.project(name);
    const generation = await readGeneration(paths.generation);
    const vm = await inspectVm(paths);
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
    };
  }));
  return { base, projects };
}
