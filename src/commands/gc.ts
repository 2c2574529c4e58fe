import { defineCommand, flagOption } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { collectGenerations, listKeptGenerations } from "../core/base/kept_generations.ts";
import { formatSize } from "../core/store/size.ts";

/** `virtdev gc [--json]`: removes kept base generations no project uses. */
export const gcCommand = defineCommand("gc", {
  brief: `Remove kept base generations that no project uses any more, and list the rest.`,
  description:
    `A reseal keeps the old base under generations/<n> while a stale project's deltas are written over it. Once every such project is recreated, detached or destroyed, the generation is unused: the next reseal removes it, or gc does now. Prints each removed generation on stdout.`,
  options: {
    json: flagOption(["--json"], `Print {"removed": [...], "kept": [...]} as JSON.`),
  },
  async run({ json }, context) {
    const { store, ui } = context;
    const { removed, kept } = await withLock(context, "gc", async () => ({
      removed: await collectGenerations(store),
      kept: await listKeptGenerations(store),
    }));
    if (json) {
      ui.result(JSON.stringify({ removed, kept }));
      return;
    }
    for (const generation of removed) ui.result(generation);
    if (removed.length === 0) ui.info("No unused base generation to remove.");
    for (const generation of kept) {
      ui.info(
        `Kept: generation ${generation.generation} (${formatSize(generation.bytes)}) for ${
          generation.projects.join(", ")
        }`,
      );
    }
  },
});
