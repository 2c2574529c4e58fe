import { defineCommand, flagOption } from "../cli/spec.ts";
import { runMaintain } from "../cli/maintain_session.ts";

/** `virtdev maintain [-y] [--no-provision] [--no-inventory]`: update the base and reseal it. */
export const maintainCommand = defineCommand("maintain", {
  brief: `Update the base in a maintenance VM, then reseal it (generation + 1).`,
  description:
    `Copies the base to maintenance/ and boots it as the VM 'maintenance' (virtdev ssh maintenance). Hooks in ~/.config/virtdev/maintenance/: 'provision' runs in the guest once SSH is up; 'inventory' runs before the session and after a second boot, and the diff is shown. The base is resealed only after the guest powered itself off (proven by QMP) and 'reseal' was typed (or -y). 'virtdev stop maintenance' or Ctrl-C abort: the base stays as it was.`,
  options: {
    yes: flagOption(["-y", "--yes"], `Unattended: power off after the provision hook and reseal without asking.`),
    noProvision: flagOption(["--no-provision"], `Do not run the provision hook.`),
    noInventory: flagOption(["--no-inventory"], `Do not run the inventory hook.`),
  },
  async run(args, context) {
    const result = await runMaintain(context, args);
    context.ui.success(`Base system resealed: ${context.store.base.dir} (generation ${result.from} → ${result.to}).`);
    if (result.outdated.length) {
      context.ui.warn(`${result.outdated.length} project(s) are now outdated: ${result.outdated.join(", ")}.`);
      context.ui.info("Rebuild them on the new base with: virtdev upgrade  (or 'virtdev recreate <project>')");
    } else {
      context.ui.info("No project needs rebuilding.");
    }
  },
});
