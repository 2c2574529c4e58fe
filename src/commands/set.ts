import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { loadConfig } from "../core/store/config.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { effectiveVmSize, readProjectSettings, updateProjectSettings } from "../core/projects/settings.ts";

/** `virtdev set <project> [cpus=N] [memory=SIZE]`: a project's own VM size. */
export const setCommand = defineCommand("set", {
  brief: `Show or set a project's own VM size: cpus=N memory=SIZE (applied at its next start).`,
  description:
    `Kept in the project; where a setting is absent, VIRTDEV_VM_CPUS and VIRTDEV_VM_MEMORY apply. memory is MiB or a size such as 2G. An empty value (cpus=) returns to the default. Without assignments, prints the size the next start uses.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
    assignments: { metavar: "NAME=VALUE", description: "cpus=N or memory=SIZE.", variadic: true },
  },
  async run({ project, assignments }, context) {
    const { store, ui, env } = context;
    const paths = await requireProject(store, project);
    const settings = assignments.length === 0
      ? await readProjectSettings(paths)
      : await withLock(context, `set ${project}`, () => updateProjectSettings(paths, assignments));
    const size = effectiveVmSize(loadConfig(env), settings);
    // As it is typed: set prints what it takes.
    const mib = size.vmMemoryMiB;
    const memory = mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
    const origin = (own: unknown) => (own === undefined ? " (default)" : "");
    ui.result(`cpus=${size.vmCpus}${origin(settings.cpus)} memory=${memory}${origin(settings.memoryMiB)}`);
    if (assignments.length > 0) ui.info(`${project} uses it from its next start.`);
  },
});
