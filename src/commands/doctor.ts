import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { withDefault } from "@optique/core/modifiers";
import { flag } from "@optique/core/primitives";
import { defineCommand } from "../cli/command.ts";
import { withLock } from "../cli/locked.ts";
import { type Check, runDoctor } from "../core/health/doctor.ts";

/** `virtdev doctor [--fix] [--json]`: what this host and store need. */
export const doctorCommand = defineCommand("doctor", {
  brief: message`Check the host (KVM, firmware, tools, supervisor) and the store for leftovers of crashed work.`,
  description:
    message`One line per check, each with what to do when it fails. KVM is probed by running QEMU for a moment, so a /dev/kvm that cannot run a guest shows as unusable. --fix removes exactly the leftovers it names (runtime files of a VM that crashed, interrupted seal, detach, reseal, create or destroy) and nothing else. Exit 0 when nothing needs fixing, 1 when something does; warnings (TCG, no passt, no lingering) do not fail.`,
  parser: object({
    fix: withDefault(flag("--fix", { description: message`Remove the leftovers found.` }), false),
    json: withDefault(flag("--json", { description: message`Print a JSON array of checks.` }), false),
  }),
  async run({ fix, json }, context) {
    const { config, store, ui, env } = context;
    const work = () => runDoctor(store, config, { env, fix });
    const checks = fix ? await withLock(context, "doctor --fix", work) : await work();
    if (json) ui.result(JSON.stringify(checks));
    else for (const check of checks) _print(check, ui.result.bind(ui));
    return checks.some((check) => check.status === "fail") ? 1 : 0;
  },
});

function _print(check: Check, print: (line: string) => void): void {
  const mark = check.fixed ? "fixed" : check.status;
  print(`${mark.padEnd(5)}  ${check.summary}`);
  if (check.action) print(`       → ${check.action}`);
}
