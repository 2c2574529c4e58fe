import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { defineCommand } from "../cli/command.ts";
import { projectArgument } from "../cli/project_argument.ts";
import { waitForGuest } from "../core/guest/guest_access.ts";
import { validateProjectName } from "../core/store/store.ts";

/** `virtdev wait <project>`: blocks until the guest accepts SSH logins. */
export const waitCommand = defineCommand("wait", {
  brief: message`Wait until a started project VM accepts SSH logins.`,
  description:
    message`Watches the guest's serial console for its ready signal, then makes one authenticated 'ssh true'. Gives up after VIRTDEV_WAIT_TIMEOUT seconds.`,
  takesProject: true,
  parser: object({ project: projectArgument() }),
  async run({ project }, { ui, store, config }) {
    validateProjectName(project);
    ui.info(`Waiting for ${project} (timeout ${config.waitTimeout}s)...`);
    const { port, seconds } = await waitForGuest(store, project, { config });
    ui.success(`SSH is up: ${project} port ${port} (${seconds.toFixed(1)}s).`);
  },
});
