import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { VirtdevError } from "../core/store/errors.ts";
import {
  DestroyExit,
  destroyProject,
  listProjectFiles,
  requireProject,
  requireStopped,
} from "../core/projects/project.ts";
import { formatSize } from "../core/store/size.ts";
import { refreshSshConfig } from "../core/projects/ssh_config.ts";
import { countSnapshots } from "../core/state/snapshots.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev destroy [-y] <project>`: deletes a project; backups stay. */
export const destroyCommand = defineCommand("destroy", {
  brief: `Delete a project VM (type its name to confirm). Backups are kept.`,
  takesProject: true,
  options: {
    yes: flagOption(["-y", "--yes"], `Do not ask for confirmation.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, yes }, context) {
    const { ui, store } = context;
    // A project the original tool made under a name refused now can still be removed.
    validateProjectName(project, { legacy: true });
    await withLock(context, `destroy ${project}`, async () => {
      const paths = await requireProject(store, project, { legacy: true });
      await requireStopped(store, project, DestroyExit.running, { suspended: "allow" });
      ui.info("This will permanently delete:");
      ui.info(`  ${paths.dir}`);
      for (const file of await listProjectFiles(paths)) {
        ui.info(`    ${formatSize(file.bytes).padStart(10)}  ${file.name}`);
      }
      const snapshots = await countSnapshots(store, project);
      if (snapshots > 0) ui.info(`Backups preserved: ${snapshots} snapshot(s) at ${store.backups(project)}`);
      if (!yes) {
        ui.info("This cannot be undone.");
        if (!await ui.confirmTyped(project)) {
          throw new VirtdevError("Aborted; nothing was deleted.", { exitCode: DestroyExit.aborted });
        }
      }
      await destroyProject(store, project);
      await refreshSshConfig(store, { configDir: context.config.configDir, identity: context.config.sshKey });
    });
    ui.success(`Project destroyed: ${project}`);
  },
});
