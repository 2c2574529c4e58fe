import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { DetachExit, detachProject, planDetach } from "../core/projects/project.ts";
import { validateProjectName } from "../core/store/store.ts";
import { startStage } from "../ui/progress.ts";

/** `virtdev detach [--in-place] [-y] <project>`: makes a project independent of the base. */
export const detachCommand = defineCommand("detach", {
  brief: `Turn a project's deltas into standalone images, independent of the base.`,
  description:
    `Converts each delta to a standalone image beside it, checks it and swaps it in; an interrupted detach is repaired by the next detach or start. With --in-place the deltas are rebased in place instead, which needs no extra space.`,
  takesProject: true,
  options: {
    inPlace: flagOption(["--in-place"], `Rebase the deltas in place instead of converting copies.`),
    yes: flagOption(["-y", "--yes"], `Do not ask for confirmation.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, inPlace, yes }, context) {
    const { ui, store } = context;
    validateProjectName(project);
    await withLock(context, `detach ${project}`, async () => {
      const plan = await planDetach(store, project);
      if (plan.recovered) ui.warn(`An interrupted detach was found and ${plan.recovered.replace("-", " ")}.`);
      ui.info(`Detaching ${project} from the base (generation ${plan.generation}):`);
      for (const disk of plan.disks) ui.info(`  ${disk.label}: ${disk.path} (backing: ${disk.backing})`);
      ui.info(`  mode: ${inPlace ? "in place" : "convert, then swap"}`);
      ui.info("No backup is taken; consider 'virtdev backup' first.");
      if (!yes && !await ui.confirmYesNo("Proceed?")) {
        throw new VirtdevError("Aborted; the project is unchanged.", { exitCode: DetachExit.aborted });
      }
      await detachProject(plan, { inPlace, onStage: (label) => startStage(ui, label) });
    });
    ui.success(`Project detached: ${project}`);
  },
});
