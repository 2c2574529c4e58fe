import { defineCommand } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { sealBase } from "../core/base/base.ts";

/** `virtdev seal`: turns the installation into the read-only base. */
export const sealCommand = defineCommand("seal", {
  brief: `Seal the installation as the read-only base (generation 1).`,
  description:
    `Checks the installed disks, moves them to the base directory, makes them read-only (mode 444) and sets the base generation to 1.`,
  // No options or positionals.
  async run(_args, context) {
    const { ui, store } = context;
    await withLock(context, "seal", () => sealBase(store, { onProgress: (line) => ui.info(line) }));
    ui.success(`Base system sealed: ${store.base.dir}`);
    ui.info("Create a project with: virtdev create <name>");
  },
});
