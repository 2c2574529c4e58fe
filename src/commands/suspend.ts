import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { UsageError } from "../core/store/errors.ts";
import { formatSize } from "../core/store/size.ts";
import { validateProjectName } from "../core/store/store.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";
import { suspendProject, type SuspendResult } from "../core/vm/suspend.ts";

/** `virtdev suspend <project>` and `suspend --all`: save a running VM's memory in the project and end it. */
export const suspendCommand = defineCommand("suspend", {
  brief: `Save a running project VM's memory in the project and end it; 'virtdev start' resumes it in seconds.`,
  description:
    `The guest is paused, writes it still held reach its disks first, and QEMU writes its memory and device state to suspended/memory in the project (0600; free memory costs nothing). QEMU and passt then end. 'virtdev start' resumes the same machine on the same port and sets the guest's clock; the state is deleted as the guest runs again. 'virtdev stop' discards it, 'start --cold' boots afresh. Commands that change the disks (resize, snapshot, detach, move, clone, recreate, restore, upgrade, maintain) refuse a suspended project (exit 76).`,
  takesProject: true,
  options: {
    all: flagOption(["--all"], `Suspend every running project VM (disposable ones are left running).`),
  },
  positionals: {
    project: { ...projectPositional, optional: true },
  },
  async run({ project, all }, context) {
    const { store, config, ui } = context;
    if (all === (project !== undefined)) {
      throw new UsageError("suspend takes a project or --all.", {
        hint: "e.g. 'virtdev suspend web' or 'virtdev suspend --all'.",
      });
    }
    const say = (name: string, result: SuspendResult) => {
      if (result.already) {
        ui.info(`${name} is already suspended.`);
        return;
      }
      ui.success(
        `Suspended ${name} in ${result.seconds.toFixed(1)}s: ${formatSize(result.memoryBytes)} of memory saved${
          result.guestUsedBytes ? ` (the guest used ${formatSize(result.guestUsedBytes)})` : ""
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
      for (const name of await store.listProjects()) {
        const status = await inspectVm(store.project(name));
        if (status.pid === undefined || status.foreign) continue;
        if (status.record?.ephemeral) {
          ui.info(`${name} runs disposably; left running (stop drops it).`);
          continue;
        }
        ui.info(`Suspending ${name}...`);
        say(name, await suspendProject(store, name, { config, reporter: ui }));
        count++;
      }
      if (count === 0) ui.info("No project VM was running.");
    }, { waitSeconds: 60 });
  },
});
