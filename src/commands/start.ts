import { defineCommand, flagOption, projectPositional, valueOption } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { validateProjectName } from "../core/store/store.ts";
import { startProject } from "../core/vm/vm_lifecycle.ts";
import { checkZoneName } from "../core/vm/egress/zone_settings.ts";
import { refreshSshConfig } from "../core/projects/ssh_config.ts";

/** `virtdev start <project> [port]`: boots a project's VM in the background. */
export const startCommand = defineCommand("start", {
  brief: `Start a project VM in the background, with SSH on a loopback port.`,
  description:
    `A suspended project ('virtdev suspend') is resumed from its saved memory, unless --cold. The port is kept per project: the first start takes the lowest free port from 2222 (or the one given), later starts reuse it while it is free. The command returns once QEMU runs and its port is bound; 'virtdev wait' waits for SSH.`,
  takesProject: true,
  options: {
    ephemeral: flagOption(
      ["--ephemeral"],
      `A disposable boot: every write goes to overlays that stop drops; the project stays byte for byte as it was.`,
    ),
    stale: flagOption(
      ["--stale"],
      `Boot a stale project on its kept base generation, to back it up, copy files out or recreate it.`,
    ),
    cold: flagOption(
      ["--cold"],
      `Boot a suspended project afresh: its saved memory is discarded (its processes end; its disks are kept).`,
    ),
    net: valueOption(
      ["--net"],
      "ZONE",
      `What the guest may reach for this boot only: none, allow, wan, lan, full or a custom zone (see 'virtdev net').`,
    ),
  },
  positionals: {
    project: projectPositional,
    port: { metavar: "PORT", description: `SSH port on 127.0.0.1 (1024-65535).`, optional: true },
  },
  async run({ project, port, net, ephemeral, stale, cold }, context) {
    const { ui, store, config, env } = context;
    validateProjectName(project);
    if (net !== undefined) await checkZoneName(config.configDir, net);
    // Waiting for the lock lets parallel starts queue instead of failing:
    // each holds it only until its QEMU has bound its port.
    const result = await withLock(context, `start ${project}`, async () => {
      ui.info(`Starting project virtual machine ${project}...`);
      const started = await startProject(store, project, {
        config,
        env,
        reporter: ui,
        port,
        egress: net,
        ephemeral,
        stale,
        cold,
      });
      // Its port is known now.
      await refreshSshConfig(store, { configDir: config.configDir, identity: config.sshKey });
      return started;
    }, { waitSeconds: 60 });
    if (result.resumed) {
      ui.success(`Resumed ${project}: its guest runs again.`);
      return;
    }
    if (result.resumedState) {
      ui.success(
        result.resumedState === "template"
          ? `Resuming a disposable run of ${project} from its warm image (port ${result.port}); its writes are dropped at stop.`
          : `Resuming ${project} from its suspended state (port ${result.port}).`,
      );
      ui.info(`'virtdev wait ${project}' returns once its clock is set and SSH answers.`);
      return;
    }
    if (result.cleanedStale) ui.info("Cleaned up after a VM that had ended without stopping (crash or reboot).");
    if (ephemeral) ui.info("Disposable boot: what the guest writes is dropped at stop.");
    ui.success(
      `Virtual machine started (${result.supervisor} supervisor, ${result.network.backend} network, zone ${result.network.egress}).`,
    );
    ui.info(`SSH at 127.0.0.1:${result.port} once the guest has booted: virtdev wait ${project}`);
    ui.info(`Shut down cleanly with: virtdev stop ${project}`);
  },
});
