import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { runAttached } from "../core/store/process.ts";
import { requireRunningGuest, waitForGuest } from "../core/guest/guest_access.ts";
import { sshArguments } from "../core/guest/ssh.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";
import { StartExit, startProject, stopProject } from "../core/vm/vm_lifecycle.ts";
import { saveTemplate, suspendProject } from "../core/vm/suspend.ts";
import { formatSize } from "../core/store/size.ts";
import type { Context } from "../cli/context.ts";

/** `virtdev run [--ephemeral] <project> [--] command…`: boot, run one command, stop. */
export const runCommand = defineCommand("run", {
  brief:
    `Run one command in a project VM: start it (disposable with --ephemeral), wait, run, stop; exits with the command's code.`,
  description:
    `With --ephemeral every write of this boot goes to overlays that the stop drops: the project is byte for byte as it was, whatever the guest did. A VM that is already running is used as it is, and left running (--ephemeral refuses it); a suspended one is resumed for the command and suspended again after it. The command line reaches the guest's shell as ssh passes it (one word per argument, joined by spaces). The VM is stopped even when the command fails or is interrupted. A disposable run resumes from the project's warm image when it has a current one (about two seconds instead of a boot); the first one after the project changed boots, and saves that image once the guest is ready.`,
  takesProject: true,
  options: {
    ephemeral: flagOption(["--ephemeral"], `Boot disposably: nothing the guest writes is kept.`),
  },
  positionals: {
    project: projectPositional,
    command: { metavar: "COMMAND", description: "The command and its arguments.", variadic: true },
  },
  async run({ project, ephemeral, command }, context) {
    const { store, config, env, ui } = context;
    const paths = await requireProject(store, project);
    if (command.length === 0) {
      throw new VirtdevError("run needs a command.", {
        exitCode: 64,
        hint: `e.g. 'virtdev run --ephemeral ${project} -- make test'.`,
      });
    }
    const state = (await inspectVm(paths)).state;
    // A suspended project is resumed for the command and suspended again after it.
    const suspended = state === "suspended" && !ephemeral;
    const running = state !== "stopped" && state !== "suspended";
    if (running && ephemeral) {
      throw new VirtdevError(`Project ${project} is running, so it cannot boot disposably.`, {
        exitCode: StartExit.running,
        hint: `Stop it first (virtdev stop ${project}), or run without --ephemeral.`,
      });
    }
    // Ctrl-C reaches ssh (the same process group); this process lives on to stop the VM.
    const ignore = (): void => {};
    Deno.addSignalListener("SIGINT", ignore);
    try {
      let warm = false;
      if (!running) {
        await withLock(context, `run ${project}`, async () => {
          ui.info(`${suspended ? "Resuming" : "Starting"} ${project}${ephemeral ? " (disposable)" : ""}...`);
          warm = (await startProject(store, project, { config, env, reporter: ui, ephemeral })).resumedState ===
            "template";
        }, { waitSeconds: 60 });
      }
      try {
        if (!running) await waitForGuest(store, project, { config });
        // The first disposable run after the project changed leaves a warm image for the next ones.
        if (ephemeral && !warm) await _saveWarmImage(context, project);
        const { target } = await requireRunningGuest(store, project, { config, notRunningCode: 5 });
        return await runAttached("ssh", sshArguments(target, command));
      } finally {
        if (suspended) {
          await withLock(context, `suspend ${project}`, async () => {
            const result = await suspendProject(store, project, { config, reporter: ui });
            ui.info(`Suspended ${project} again (${result.seconds.toFixed(1)}s).`);
          }, { waitSeconds: 60 });
        } else if (!running) {
          const stopped = await withLock(
            context,
            `stop ${project}`,
            () => stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: ui }),
            { waitSeconds: 60 },
          );
          ui.info(`Stopped ${project} (${stopped.how})${ephemeral ? "; its writes are gone" : ""}.`);
        }
      }
    } finally {
      Deno.removeSignalListener("SIGINT", ignore);
    }
  },
});

/** Saves the warm image of a disposable run that booted cold; a failure costs the next run a boot, not this one. */
async function _saveWarmImage(context: Context, project: string): Promise<void> {
  const { store, config, ui } = context;
  try {
    await withLock(context, `suspend --template ${project}`, async () => {
      const saved = await saveTemplate(store, project, { config, reporter: ui });
      ui.info(
        `Saved a warm image of ${project} (${formatSize(saved.memoryBytes)} of memory, ${
          saved.seconds.toFixed(1)
        }s): its next disposable runs resume from it.`,
      );
    }, { waitSeconds: 60 });
  } catch (error) {
    if (!(error instanceof VirtdevError)) throw error;
    ui.warn(`could not save a warm image of ${project}: ${error.message}`);
  }
}
