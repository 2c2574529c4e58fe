import { defineCommand, projectPositional } from "../cli/spec.ts";
import { waitForGuest } from "../core/guest/guest_access.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev wait <project>`: blocks until the guest accepts SSH logins. */
export const waitCommand = defineCommand("wait", {
  brief: `Wait until a started project VM accepts SSH logins.`,
  description:
    `Watches the guest's serial console for its ready signal, then makes one authenticated 'ssh true'. Gives up after VIRTDEV_WAIT_TIMEOUT seconds, and at once when the guest stops running (a kernel panic, a KVM internal error, a full host disk: exit 12, with the reason).`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, { ui, store, config }) {
    validateProjectName(project);
    ui.info(`Waiting for ${project} (timeout ${config.waitTimeout}s)...`);
    const { port, seconds, clock } = await waitForGuest(store, project, { config });
    if (clock && !clock.set) {
      ui.warn(
        `could not set ${project}'s clock after its resume (${clock.detail}); it is behind by the time it was suspended. The guest contract's passwordless sudo for dev is needed.`,
      );
    }
    ui.success(`SSH is up: ${project} port ${port} (${seconds.toFixed(1)}s).`);
  },
});
