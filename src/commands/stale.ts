import { defineCommand } from "../cli/spec.ts";
import { isStale, readGeneration } from "../core/store/generation.ts";

/** `virtdev stale`: lists projects made on another base generation. */
export const staleCommand = defineCommand("stale", {
  brief: `List projects whose generation differs from the base's (one per line).`,
  // No options or positionals.
  async run(_args, { store, ui }) {
    const base = await readGeneration(store.base.generation);
    const names = [...await store.listProjects(), ...await store.listLegacyProjects()].sort();
    for (const name of names) {
      if (isStale(await readGeneration(store.project(name).generation), base)) ui.result(name);
    }
  },
});
