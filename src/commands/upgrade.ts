import { lockTaker } from "../cli/locked.ts";
import { defineCommand, flagOption, valueOption } from "../cli/spec.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { describeUpgradePlan, planUpgrade, runUpgrade, UpgradeExit } from "../core/state/upgrade.ts";
import { runMaintain } from "../cli/maintain_session.ts";

function _names(list: string | undefined): string[] | undefined {
  return list?.split(",").map((name) => name.trim()).filter((name) => name !== "");
}

/** `virtdev upgrade`: back up, maintain the base, rebuild every project on it. */
export const upgradeCommand = defineCommand("upgrade", {
  brief: `Back up every project, maintain the base, and rebuild each project on the new base.`,
  description:
    `Projects without a backup manifest and detached projects are left out. Stopped projects are started for their backup and stopped again. With -y the maintenance runs unattended through its hooks. Exits 40 if any rebuild failed, and prints the command that resumes each.`,
  options: {
    only: valueOption(["--only"], "A,B", `Upgrade only these projects.`),
    except: valueOption(["--except"], "C,D", `Leave these projects out.`),
    skipOutdated: flagOption(["--skip-outdated"], `Leave out stopped projects already on an older base.`),
    yes: flagOption(["-y", "--yes"], `Do not ask; maintain unattended.`),
    verbose: flagOption(["-v", "--verbose"], `Show rsync's per-file output.`),
  },
  async run(args, context) {
    const { ui, store, config, env } = context;
    const plan = await planUpgrade(store, {
      only: _names(args.only),
      except: _names(args.except),
      skipOutdated: args.skipOutdated,
      verbose: args.verbose,
    }, { config });
    for (const warning of plan.warnings) ui.warn(warning);
    for (const line of describeUpgradePlan(plan)) ui.info(line);
    if (!args.yes && !await ui.confirmTyped("upgrade")) {
      throw new VirtdevError("Aborted; nothing was changed.", { exitCode: UpgradeExit.aborted });
    }
    const output = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
    const summary = await runUpgrade(store, plan, {
      lock: lockTaker(context),
      config,
      env,
      maintain: () => runMaintain(context, { yes: args.yes, noProvision: false, noInventory: false }),
      progress: {
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
        phase: (index, line) => ui.info(`[Phase ${index}/4] ${line}...`, "bold"),
        banner: (index, total, step, detail) => ui.info(`  [${index}/${total}] ${step}${detail ? ` ${detail}` : ""}`),
        output: output.write,
      },
    });
    output.end();
    ui.info("[Phase 4/4] Summary", "bold");
    const failed = summary.rows.filter((row) => row.result !== "upgraded");
    const width = Math.max(7, ...summary.rows.map((row) => row.project.length));
    ui.result(`${"PROJECT".padEnd(width)}  BEFORE  AFTER  ${"SNAPSHOT".padEnd(19)}  RESULT`);
    for (const row of summary.rows) {
      ui.result(
        `${row.project.padEnd(width)}  ${row.before.padEnd(6)}  ${row.after.padEnd(5)}  ${
          (row.snapshot ?? "-").padEnd(19)
        }  ${row.result}`,
      );
    }
    for (const row of failed) ui.info(`Resume ${row.project} with: ${row.resume}`);
    for (const { project, reason } of plan.excluded) ui.info(`Not upgraded: ${project} (${reason})`);
    ui.info(`Base generation: ${summary.from} → ${summary.to}`);
    if (failed.length) {
      throw new VirtdevError(`Upgrade incomplete: ${failed.length} of ${summary.rows.length} rebuilds failed.`, {
        exitCode: UpgradeExit.rebuildFailed,
        hint: "Run each resume command above.",
      });
    }
    ui.success("Upgrade complete.");
  },
});
