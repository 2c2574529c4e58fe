import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { flag, option } from "@optique/core/primitives";
import { choice, string } from "@optique/core/valueparser";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { describePlan, planRecreate, RecreateExit, recreateSteps, runRecreate } from "../core/state/recreate.ts";

/** `virtdev recreate [flags] <project>`: rebuild a project on the current base, keeping its data. */
export const recreateCommand = defineCommand("recreate", {
  brief:
    message`Rebuild a project on the current base: backup, stop, destroy, create, start, wait, provision, restore.`,
  description:
    message`The provision script is --provision PATH or ~/.config/virtdev/projects/<project>/provision; it runs in the guest as dev with 'bash -s'. Each step has its own exit code (20 backup … 27 restore); on a failure the command that resumes from that step is printed. Snapshots are never deleted.`,
  takesProject: true,
  parser: object({
    noBackup: withDefault(flag("--no-backup", { description: message`Skip the backup.` }), false),
    noRestore: withDefault(flag("--no-restore", { description: message`Skip the restore.` }), false),
    noProvision: withDefault(flag("--no-provision", { description: message`Skip provisioning.` }), false),
    provision: optional(
      option("-p", "--provision", string({ metavar: "PATH" }), { description: message`The provision script.` }),
    ),
    snapshot: optional(
      option("--snapshot", string({ metavar: "ID" }), {
        description: message`Restore this snapshot instead of the newest.`,
      }),
    ),
    from: optional(
      option("--from", choice(recreateSteps, { metavar: "STEP" }), {
        description: message`Resume at this step, skipping those before it.`,
      }),
    ),
    yes: withDefault(flag("-y", "--yes", { description: message`Do not ask for confirmation.` }), false),
    verbose: withDefault(flag("-v", "--verbose", { description: message`Show rsync's per-file output.` }), false),
    project: projectArgument(),
  }),
  async run(args, { store, config, env, ui }) {
    const plan = await planRecreate(store, { ...args }, { config });
    for (const line of describePlan(plan)) ui.info(line);
    if (!args.yes) {
      if (!await ui.confirmTyped(args.project)) {
        throw new VirtdevError("Aborted; nothing was changed.", { exitCode: RecreateExit.aborted });
      }
    }
    const guestOutput = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
    const result = await runRecreate(store, plan, {
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
