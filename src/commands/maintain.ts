import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { withDefault } from "@optique/core/modifiers";
import { flag } from "@optique/core/primitives";
import { defineCommand } from "../cli/command.ts";
import type { Context } from "../cli/context.ts";
import { maintainBase, type MaintainRequest, type MaintainResult } from "../core/base/maintain.ts";

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

/** Runs a maintenance session with the CLI's output, prompt and Ctrl-C; shared with `upgrade`. */
export async function runMaintain(context: Context, request: MaintainRequest): Promise<MaintainResult> {
  const { ui, store, config, env } = context;
  const controller = new AbortController();
  const onInterrupt = (): void => {
    if (!controller.signal.aborted) ui.warn("interrupted: aborting the maintenance session.");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const output = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
  try {
    return await maintainBase(store, request, {
      config,
      env,
      signal: controller.signal,
      confirm: () => ui.confirmTyped("reseal"),
      progress: {
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
        stage: (line) => ui.info(`${line}...`, "bold"),
        output: output.write,
        diff: (text) => {
          const diff = ui.guestStream();
          diff.write(text);
          diff.end();
        },
      },
    });
  } finally {
    output.end();
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
