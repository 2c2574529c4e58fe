import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { createProject, validateNewProjectName } from "../core/projects/project.ts";
import { refreshSshConfig } from "../core/projects/ssh_config.ts";

/** `virtdev create <project>`: derives a project from the base. */
export const createCommand = defineCommand("create", {
  brief: `Create a project VM as two thin deltas over the base.`,
  description:
    `Creates thin qcow2 deltas of the base's system and home disks, a copy of its UEFI variables and its generation. Nothing is started.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, context) {
    validateNewProjectName(project);
    const { ui } = context;
    const { store, config } = context;
    const paths = await withLock(context, `create ${project}`, async () => {
      const made = await createProject(store, project, { reporter: ui });
      await refreshSshConfig(store, { configDir: config.configDir, identity: config.sshKey });
      return made;
    });
    ui.success(`Project virtual machine created: ${project}`);
    ui.info(`Start it with: virtdev start ${project}`);
    ui.result(paths.dir);
  },
});
