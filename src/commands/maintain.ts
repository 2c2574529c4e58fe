import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { withDefault } from "@optique/core/modifiers";
import { flag } from "@optique/core/primitives";
import { defineCommand } from "../cli/command.ts";
import { runMaintain } from "../cli/maintain_session.ts";

/** `virtdev maintain [-y] [--no-provision] [--no-inventory]`: update the base and reseal it. */
export const maintainCommand = defineCommand("maintain", {
  brief: message`Update the base in a maintenance VM, then reseal it (generation + 1).`,
  description:
    message`Copies the base to maintenance/ and boots it as the VM 'maintenance' (virtdev ssh maintenance). Hooks in ~/.config/virtdev/maintenance/: 'provision' runs in the guest once SSH is up; 'inventory' runs before the session and after a second boot, and the diff is shown. The base is resealed only after the guest powered itself off (proven by QMP) and 'reseal' was typed (or -y). 'virtdev stop maintenance' or Ctrl-C abort: the base stays as it was.`,
  parser: object({
    yes: withDefault(
      flag("-y", "--yes", {
        description: message`Unattended: power off after the provision hook and reseal without asking.`,
      }),
      false,
    ),
    noProvision: withDefault(flag("--no-provision", { description: message`Do not run the provision hook.` }), false),
    noInventory: withDefault(flag("--no-inventory", { description: message`Do not run the inventory hook.` }), false),
  }),
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
