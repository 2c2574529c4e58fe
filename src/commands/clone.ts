import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { cloneProject } from "../core/projects/clone.ts";
import { refreshSshConfig } from "../core/projects/ssh_config.ts";

/** `virtdev clone <source> <new>`: a new project from a stopped one. */
export const cloneCommand = defineCommand("clone", {
  brief:
    `Clone a stopped project: its disks (over the same base), nvram, snapshots, manifest and settings; a new host key.`,
  description:
    `The copy costs what the source has written, not the base (a reflink where the file system allows). The clone gets its own SSH host key and port, its hostname is its name, and the guest gives itself a new machine-id at its first boot. Forwards stay with the source.`,
  takesProject: true,
  positionals: {
    project: { ...projectPositional, metavar: "SOURCE", description: "The project to copy (stopped)." },
    name: { metavar: "NEW", description: "The new project's name." },
  },
  async run({ project, name }, context) {
    const { store, config, ui } = context;
    const started = performance.now();
    const paths = await withLock(context, `clone ${project} ${name}`, async () => {
      const made = await cloneProject(store, project, name, { configDir: config.configDir });
      await refreshSshConfig(store, { configDir: config.configDir, identity: config.sshKey });
      return made;
    });
    ui.success(`Project ${name} cloned from ${project} (${((performance.now() - started) / 1000).toFixed(1)}s).`);
    ui.info(`Start it with: virtdev start ${name}`);
    ui.result(paths.dir);
  },
});
