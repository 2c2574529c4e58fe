import { defineCommand } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { allocatedBytes } from "../core/store/disk_usage.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { executeNuke, NukeExit, planNuke, requireRootsInsideHome } from "../core/projects/nuke.ts";
import { formatSize } from "../core/store/size.ts";
import { countAllSnapshots } from "../core/state/snapshots.ts";

/** `virtdev nuke`: deletes all virtdev data (type 'nuke' to confirm). */
export const nukeCommand = defineCommand("nuke", {
  brief: `Delete all virtdev data: projects, backups, base, keys, cache (type 'nuke' to confirm).`,
  description:
    `Deletes VIRTDEV_HOME and VIRTDEV_CACHE after checking that both lie inside your home directory and hold only what virtdev made there. Your configuration (manifests, provision scripts) is kept.`,
  // No options or positionals.
  async run(_args, context) {
    const { ui, config, store } = context;
    requireRootsInsideHome(config);
    await withLock(context, "nuke", async () => {
      const plan = await planNuke(config);
      ui.info("This will permanently delete:");
      for (const root of plan.roots) ui.info(`  ${root} (${formatSize(await allocatedBytes(root))})`);
      const snapshots = await countAllSnapshots(store);
      if (snapshots.size > 0) {
        ui.info("Including backup snapshots:");
        for (const [project, count] of snapshots) ui.info(`  ${project}: ${count} snapshot(s)`);
      }
      ui.info("That is every project, disk image, backup, the base, the SSH key and the cache.");
      if (!await ui.confirmTyped("nuke")) {
        throw new VirtdevError("Aborted; nothing was deleted.", { exitCode: NukeExit.aborted });
      }
      await executeNuke(plan);
      ui.success("All virtdev data deleted.");
    });
  },
});
