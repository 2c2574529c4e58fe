import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { runAttached } from "../core/store/process.ts";
import { requireRunningGuest, waitForGuest } from "../core/guest/guest_access.ts";
import { sshArguments } from "../core/guest/ssh.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";
import { StartExit, startProject, stopProject } from "../core/vm/vm_lifecycle.ts";

/** `virtdev run [--ephemeral] <project> [--] command…`: boot, run one command, stop. */
export const runCommand = defineCommand("run", {
  brief:
    `Run one command in a project VM: start it (disposable with --ephemeral), wait, run, stop; exits with the command's code.`,
  description:
    `With --ephemeral every write of this boot goes to overlays that the stop drops: the project is byte for byte as it was, whatever the guest did. A VM that is already running is used as it is, and left running (--ephemeral refuses it). The command line reaches the guest's shell as ssh passes it (one word per argument, joined by spaces). The VM is stopped even when the command fails or is interrupted.`,
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
    const running = (await inspectVm(paths)).state !== "stopped";
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
      if (!running) {
        await withLock(context, `run ${project}`, async () => {
          ui.info(`Starting ${project}${ephemeral ? " (disposable)" : ""}...`);
          await startProject(store, project, { config, env, reporter: ui, ephemeral });
        }, { waitSeconds: 60 });
      }
      try {
        if (!running) await waitForGuest(store, project, { config });
        const { target } = await requireRunningGuest(store, project, { config, notRunningCode: 5 });
        return await runAttached("ssh", sshArguments(target, command));
      } finally {
        if (!running) {
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
