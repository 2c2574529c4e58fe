import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { moveProject } from "../core/projects/move.ts";
import { refreshSshConfig } from "../core/projects/ssh_config.ts";

/** `virtdev move <old> <new>`: renames a stopped project. */
export const moveCommand = defineCommand("move", {
  brief:
    `Rename a stopped project, with its backups, configuration and host-key pin; the hostname follows at its next boot.`,
  description:
    `One journalled operation: cut short anywhere, it is finished by the next command that takes virtdev's lock. OLD may be a name only the original virtdev allowed (over 64 characters, a leading '-': put '--' before it, or 'base'), so that such projects can be brought over.`,
  takesProject: true,
  positionals: {
    project: { ...projectPositional, metavar: "OLD", description: "The project's name now." },
    name: { metavar: "NEW", description: "Its new name." },
  },
  async run({ project, name }, context) {
    const { store, config, ui } = context;
    await withLock(context, `move ${project} ${name}`, async () => {
      await moveProject(store, project, name, { configDir: config.configDir });
      await refreshSshConfig(store, { configDir: config.configDir, identity: config.sshKey });
    });
    ui.success(`Project ${project} is now ${name}; its hostname follows at its next boot.`);
  },
});
