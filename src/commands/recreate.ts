import { lockTaker } from "../cli/locked.ts";
import { defineCommand, flagOption, projectPositional, valueOption } from "../cli/spec.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { describePlan, planRecreate, RecreateExit, recreateSteps, runRecreate } from "../core/state/recreate.ts";

/** `virtdev recreate [flags] <project>`: rebuild a project on the current base, keeping its data. */
export const recreateCommand = defineCommand("recreate", {
  brief: `Rebuild a project on the current base: backup, stop, destroy, create, start, wait, provision, restore.`,
  description:
    `The provision script is --provision PATH or ~/.config/virtdev/projects/<project>/provision; it runs in the guest as dev with 'bash -s'. Each step has its own exit code (20 backup … 27 restore); on a failure the command that resumes from that step is printed. Snapshots are never deleted.`,
  takesProject: true,
  options: {
    noBackup: flagOption(["--no-backup"], `Skip the backup.`),
    noRestore: flagOption(["--no-restore"], `Skip the restore.`),
    noProvision: flagOption(["--no-provision"], `Skip provisioning.`),
    provision: valueOption(["-p", "--provision"], "PATH", `The provision script.`),
    snapshot: valueOption(["--snapshot"], "ID", `Restore this snapshot instead of the newest.`),
    from: valueOption(["--from"], "STEP", `Resume at this step, skipping those before it.`, {
      type: "choice",
      choices: recreateSteps,
    }),
    yes: flagOption(["-y", "--yes"], `Do not ask for confirmation.`),
    verbose: flagOption(["-v", "--verbose"], `Show rsync's per-file output.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run(args, context) {
    const { store, config, env, ui } = context;
    const plan = await planRecreate(store, { ...args }, { config });
    for (const line of describePlan(plan)) ui.info(line);
    if (!args.yes) {
      if (!await ui.confirmTyped(args.project)) {
        throw new VirtdevError("Aborted; nothing was changed.", { exitCode: RecreateExit.aborted });
      }
    }
    const guestOutput = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
    const result = await runRecreate(store, plan, {
      lock: lockTaker(context),
      config,
      env,
      progress: {
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
        banner: (index, total, step, detail) =>
          ui.info(`[${index}/${total}] ${step}${detail ? ` ${detail}` : ""}`, "bold"),
        output: guestOutput.write,
      },
    });
    guestOutput.end();
    ui.success(`Project recreated: ${args.project}${result.restored ? "" : " (restore skipped)"}.`);
  },
});
