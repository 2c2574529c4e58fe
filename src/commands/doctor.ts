import { defineCommand, flagOption } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { type Check, runDoctor } from "../core/health/doctor.ts";

/** `virtdev doctor [--fix] [--json]`: what this host and store need. */
export const doctorCommand = defineCommand("doctor", {
  brief: `Check the host (KVM, firmware, tools, supervisor) and the store for leftovers of crashed work.`,
  description:
    `One line per check, each with what to do when it fails. KVM is probed by running QEMU for a moment, so a /dev/kvm that cannot run a guest shows as unusable. --fix removes exactly the leftovers it names (runtime files of a VM that crashed, interrupted seal, detach, reseal, create or destroy) and nothing else. Exit 0 when nothing needs fixing, 1 when something does; warnings (TCG, no passt, no lingering) do not fail.`,
  options: {
    fix: flagOption(["--fix"], `Remove the leftovers found.`),
    json: flagOption(["--json"], `Print a JSON array of checks.`),
  },
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
