import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { UsageError, VirtdevError } from "../core/store/errors.ts";
import { formatSize } from "../core/store/size.ts";
import { validateProjectName } from "../core/store/store.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";
import { saveTemplate, suspendProject, type SuspendResult } from "../core/vm/suspend.ts";
import { startProject, stopProject } from "../core/vm/vm_lifecycle.ts";
import { waitForGuest } from "../core/guest/guest_access.ts";
import type { Context } from "../cli/context.ts";

/** `virtdev suspend <project>` and `suspend --all`: save a running VM's memory in the project and end it. */
export const suspendCommand = defineCommand("suspend", {
  brief: `Save a running project VM's memory in the project and end it; 'virtdev start' resumes it in seconds.`,
  description:
    `The guest is paused, writes it still held reach its disks first, and QEMU writes its memory and device state to suspended/memory in the project (0600; free memory costs nothing). QEMU and passt then end. 'virtdev start' resumes the same machine on the same port and sets the guest's clock; the state is deleted as the guest runs again. 'virtdev stop' discards it, 'start --cold' boots afresh. With --template it saves instead the project's warm image, which disposable runs ('run --ephemeral', 'start --ephemeral') resume from in seconds; any change to the project's disks makes the next disposable run boot and save a new one. Commands that change the disks (resize, snapshot, detach, move, clone, recreate, restore, upgrade, maintain) refuse a suspended project (exit 76).`,
  takesProject: true,
  options: {
    all: flagOption(["--all"], `Suspend every running project VM (disposable ones are left running).`),
    template: flagOption(
      ["--template"],
      `Save the warm image that disposable runs resume from: of its running disposable boot, or (stopped) boot one, wait, save, stop.`,
    ),
  },
  positionals: {
    project: { ...projectPositional, optional: true },
  },
  async run({ project, all, template }, context) {
    const { store, config, ui } = context;
    if (all === (project !== undefined) || (template && all)) {
      throw new UsageError("suspend takes a project or --all (--template takes a project).", {
        hint: "e.g. 'virtdev suspend web', 'virtdev suspend --all' or 'virtdev suspend --template web'.",
      });
    }
    if (template) {
      validateProjectName(project!);
      await _warmImage(context, project!);
      return;
    }
    const say = (name: string, result: SuspendResult) => {
      if (result.already) {
        ui.info(`${name} is already suspended.`);
        return;
      }
      ui.success(
        `Suspended ${name} in ${result.seconds.toFixed(1)}s: ${formatSize(result.memoryBytes)} of memory saved${
          result.guestHeldBytes && result.configuredBytes
            ? ` (the guest held ${formatSize(result.guestHeldBytes)} of its ${
              formatSize(result.configuredBytes)
            }; what it had free costs nothing)`
            : ""
        }. 'virtdev start ${name}' resumes it.`,
      );
    };
    await withLock(context, all ? "suspend --all" : `suspend ${project}`, async () => {
      if (project !== undefined) {
        validateProjectName(project);
        ui.info(`Suspending ${project}...`);
        say(project, await suspendProject(store, project, { config, reporter: ui }));
        return;
      }
      let count = 0;
      // One that cannot be suspended does not keep the others running; the first failure is the exit code.
      let failed: VirtdevError | undefined;
      for (const name of await store.listProjects()) {
        const status = await inspectVm(store.project(name));
        if (status.pid === undefined || status.foreign) continue;
        if (status.record?.ephemeral) {
          ui.info(`${name} runs disposably; left running (stop drops it).`);
          continue;
        }
        ui.info(`Suspending ${name}...`);
        try {
          say(name, await suspendProject(store, name, { config, reporter: ui }));
          count++;
        } catch (error) {
          if (!(error instanceof VirtdevError)) throw error;
          ui.warn(`${name}: ${error.message}`);
          failed ??= error;
        }
      }
      if (count === 0 && !failed) ui.info("No project VM was running.");
      if (failed) throw failed;
    }, { waitSeconds: 60 });
  },
});

/** `suspend --template`: saves the warm image of a running disposable boot, or boots one to save it. */
async function _warmImage(context: Context, project: string): Promise<void> {
  const { store, config, env, ui } = context;
  const running = (await inspectVm(store.project(project))).state !== "stopped";
  if (!running) {
    await withLock(context, `suspend --template ${project}`, async () => {
      ui.info(`Booting ${project} disposably for its warm image...`);
      // Cold: the image is of a fresh boot, whatever image there was.
      await startProject(store, project, { config, env, reporter: ui, ephemeral: true, cold: true });
    }, { waitSeconds: 60 });
  }
  try {
    if (!running) await waitForGuest(store, project, { config });
    const saved = await withLock(
      context,
      `suspend --template ${project}`,
      () => saveTemplate(store, project, { config, reporter: ui }),
      { waitSeconds: 60 },
    );
    ui.success(
      `Saved ${project}'s warm image in ${saved.seconds.toFixed(1)}s (${
        formatSize(saved.memoryBytes)
      } of memory): 'virtdev run --ephemeral ${project} -- …' resumes from it while the project is unchanged.`,
    );
  } finally {
    if (!running) {
      await withLock(
        context,
        `stop ${project}`,
        () => stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: ui }),
        { waitSeconds: 60 },
      );
    }
  }
}
