import { defineCommand } from "../cli/spec.ts";
import { ensureKey } from "../core/guest/ssh_key.ts";

/** `virtdev key`: makes the SSH key virtdev logs in with. */
export const keyCommand = defineCommand("key", {
  brief: `Generate the ed25519 SSH key virtdev uses (once).`,
  description: `Generates an ed25519 key pair at VIRTDEV_SSH_KEY unless one exists, and prints the key's path.`,
  // No options or positionals.
  async run(_args, { config, ui }) {
    const generated = await ensureKey(config.sshKey);
    if (generated) ui.success(`SSH key generated: ${config.sshKey}`);
    else ui.info(`SSH key already exists: ${config.sshKey}`);
    ui.result(config.sshKey);
  },
});
