import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { resizableDisks, resizeProjectDisk } from "../core/projects/resize.ts";
import { formatSize } from "../core/store/size.ts";

/** `virtdev resize <project> home|system SIZE`: grows a stopped project's disk. */
export const resizeCommand = defineCommand("resize", {
  brief:
    `Grow a stopped project's home or system disk (SIZE, or +SIZE to add); the guest grows into it at its next boot.`,
  description:
    `The project's delta gets the new size; at the next boot the guest grows the partition (growpart, where installed) and the ext4 file system. Disks only grow: a smaller SIZE is refused.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
    disk: { metavar: "DISK", description: "home or system.", choices: resizableDisks },
    size: { metavar: "SIZE", description: "The new size (50G) or what to add (+10G)." },
  },
  async run({ project, disk, size }, context) {
    const { store, ui } = context;
    const result = await withLock(
      context,
      `resize ${project}`,
      () => resizeProjectDisk(store, project, { disk, size }),
    );
    if (result.after === result.before) {
      ui.info(`${project}'s ${disk} disk is already ${formatSize(result.after)}; nothing to do.`);
      return;
    }
    ui.success(
      `${project}'s ${disk} disk: ${formatSize(result.before)} → ${
        formatSize(result.after)
      }. The guest grows into it at its next boot.`,
    );
  },
});
