import { defineCommand, projectPositional } from "../cli/spec.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { readOptionalText } from "../core/store/store.ts";
import { requireProject } from "../core/projects/project_lookup.ts";

/** `virtdev generation [project]`: prints a generation counter. */
export const generationCommand = defineCommand("generation", {
  brief: `Print the base generation, or a project's (a number or 'detached').`,
  takesProject: true,
  positionals: {
    project: { ...projectPositional, optional: true },
  },
  async run({ project }, { store, ui }) {
    if (project === undefined) {
      const text = await readOptionalText(store.base.generation);
      if (text === undefined) {
        throw new VirtdevError("There is no sealed base.", {
          exitCode: 3,
          hint: "Install and seal one: 'virtdev install --image <cloud image>', then 'virtdev seal'.",
        });
      }
      ui.result(text.trim());
      return;
    }
    const paths = await requireProject(store, project);
    const text = await readOptionalText(paths.generation);
    if (text === undefined) {
      throw new VirtdevError(`Project ${project} has no generation file.`, {
        exitCode: 4,
        hint: `Rebuild it on the base: virtdev destroy ${project} && virtdev create ${project}`,
      });
    }
    ui.result(text.trim());
  },
});
