import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { UsageError } from "../core/store/errors.ts";
import { validateProjectName } from "../core/store/store.ts";
import { describeForward, parseForwardSpec } from "../core/vm/forwards.ts";
import { addForward, removeForward, reportForwards } from "../core/vm/forward_control.ts";
import { requireProject } from "../core/projects/project_lookup.ts";

/** `virtdev forward <project> [HOSTPORT:]GUESTPORT`, `--list [--json]`, `--remove`. */
export const forwardCommand = defineCommand("forward", {
  brief: `Make a guest port reachable on the host's 127.0.0.1 (and only there); kept across starts.`,
  description:
    `SPEC is [HOSTPORT:]GUESTPORT. Forwards are added and removed while the VM runs (over its pinned SSH, kept by the VM's host agent) and set up again at every start. --list shows them with their state; --remove takes the same SPEC, or the host port alone.`,
  takesProject: true,
  options: {
    list: flagOption(["-l", "--list"], `List the forwards.`),
    json: flagOption(["--json"], `With --list: print JSON.`),
    remove: flagOption(["--remove"], `Remove the forward SPEC (or the one on host port SPEC).`),
  },
  positionals: {
    project: projectPositional,
    spec: { metavar: "SPEC", optional: true },
  },
  async run({ list, json, remove, project, spec }, { store, ui }) {
    validateProjectName(project);
    if (list) {
      const reports = await reportForwards(await requireProject(store, project));
      if (json) {
        ui.result(JSON.stringify(reports));
        return;
      }
      if (reports.length === 0) {
        ui.info(`${project} has no forwards. Add one with: virtdev forward ${project} [HOSTPORT:]GUESTPORT`);
        return;
      }
      ui.result(`${"HOST".padEnd(15)}  ${"GUEST".padEnd(5)}  STATE`);
      for (const r of reports) {
        ui.result(
          `${`127.0.0.1:${r.host}`.padEnd(15)}  ${String(r.guest).padEnd(5)}  ${r.state}${
            r.error ? ` (${r.error})` : ""
          }`,
        );
      }
      return;
    }
    if (remove) {
      if (spec === undefined) {
        throw new UsageError("forward --remove needs a SPEC.", {
          hint: `e.g. 'virtdev forward --remove ${project} 18000'.`,
        });
      }
      const forward = /^\d+$/.test(spec) ? { host: parseForwardSpec(spec).host } : parseForwardSpec(spec);
      const removed = await removeForward(store, project, forward);
      ui.success(`Removed ${describeForward(removed)}.`);
      return;
    }
    if (spec === undefined) {
      throw new UsageError("forward needs a SPEC, --list or --remove SPEC.", {
        hint: `e.g. 'virtdev forward ${project} 8000' or 'virtdev forward --list ${project}'.`,
      });
    }
    const report = await addForward(store, project, parseForwardSpec(spec));
    if (report.state === "stopped") {
      ui.success(`Kept ${describeForward(report)}; it is set up when ${project} starts.`);
    } else {
      ui.success(`Forwarding ${describeForward(report)}.`);
    }
  },
});
