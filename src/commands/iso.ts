import { defineCommand } from "../cli/spec.ts";
import { buildIso } from "../core/base/iso.ts";

/** `virtdev iso`: builds the unattended Arch installer ISO. */
export const isoCommand = defineCommand("iso", {
  brief: `Build the unattended Arch installer ISO (needs archiso and sudo); then 'virtdev install'.`,
  description:
    `Renders an archiso profile from the host's releng profile and virtdev's overlay (your public key, VIRTDEV_TIMEZONE, VIRTDEV_LOCALE, VIRTDEV_KEYMAP; UEFI with a serial console) and runs 'sudo mkarchiso'. Writes VIRTDEV_CACHE/virtdev.iso and prints its path.`,
  // No options or positionals.
  async run(_args, { ui, config }) {
    const output = ui.guestStream();
    const path = await buildIso(config, { reporter: ui, onOutput: output.write });
    output.end();
    ui.success(`Created the Arch installation medium: ${path}`);
    ui.info("Next: virtdev install");
    ui.result(path);
  },
});
