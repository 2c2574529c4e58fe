import { defineCommand, projectPositional } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { maintenanceVmName, validateProjectName } from "../core/store/store.ts";
import { stopProject } from "../core/vm/vm_lifecycle.ts";
import { inspectVm } from "../core/vm/runtime_state.ts";

/** `virtdev stop <project>`: shuts a project's VM down cleanly. */
export const stopCommand = defineCommand("stop", {
  brief: `Shut a project VM down (ACPI power-off; SIGTERM after VIRTDEV_STOP_TIMEOUT).`,
  description:
    `A disposable boot (--ephemeral) is ended at once: nothing of it is kept. For a suspended project, stop discards its saved memory: its processes end, and its disks keep what the guest had written by the suspend (the suspend syncs them). The next start boots afresh.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, context) {
    const { ui, store, config } = context;
    validateProjectName(project);
    if (project === maintenanceVmName) {
      // The maintain session holds the store lock and waits for this VM to end.
      ui.info("Aborting the maintenance session (ACPI power-off)...");
      const stopped = await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: ui });
      ui.success(`Maintenance VM stopped (${stopped.how}); the session discards its copy of the base.`);
      return;
    }
    const result = await withLock(context, `stop ${project}`, async () => {
      const status = await inspectVm(store.project(project));
      if (status.record?.ephemeral) ui.info(`Ending ${project}'s disposable boot (nothing of it is kept)...`);
      else if (status.state !== "suspended") ui.info(`Sending ACPI power-off to ${project}...`);
      return await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: ui });
    }, { waitSeconds: 60 });
    if (result.how === "discarded its suspended state") {
      ui.success(
        `Discarded ${project}'s suspended state: its processes are gone; its disks hold what was synced at the suspend.`,
      );
      return;
    }
    ui.success(`Project virtual machine stopped: ${project} (${result.how}).`);
  },
});
