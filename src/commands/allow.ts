import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { ExitCode, VirtdevError } from "../core/store/errors.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import {
  type AllowPattern,
  AllowPatternError,
  builtinSets,
  formatAllowPattern,
  parseAllowPattern,
} from "../core/vm/egress/allow_pattern.ts";
import { readAllowlist, resolvePolicy, writeAllowlist } from "../core/vm/egress/zone_settings.ts";
import { applyNet } from "../core/vm/net_control.ts";

/** `virtdev allow <project> [PATTERN…] [--remove]`: the names and addresses zone allow lets through. */
export const allowCommand = defineCommand("allow", {
  brief: `Show or edit a project's allowlist: the names and addresses its guest may reach in zone allow.`,
  description:
    `PATTERN is a name (example.org), its subdomains (*.example.org), an address or a CIDR block, each with an optional :port, or a built-in set: ${
      Object.keys(builtinSets).map((s) => `@${s}`).join(", ")
    } (the @ may be left out). In zone allow the guest reaches only these; in the other zones they are allowed on top (a private address, say). A change applies to a running VM at once. Without PATTERN: the list.`,
  takesProject: true,
  options: {
    remove: flagOption(["--remove"], `Remove the PATTERNs instead.`),
    json: flagOption(["--json"], `Print the list as JSON.`),
  },
  positionals: {
    project: projectPositional,
    patterns: { metavar: "PATTERN", variadic: true },
  },
  async run({ project, patterns, remove, json }, { store, ui, config }) {
    const paths = await requireProject(store, project);
    const kept = await readAllowlist(paths);
    if (patterns.length === 0) {
      const list = kept.map(formatAllowPattern);
      if (json) ui.result(JSON.stringify(list));
      else if (list.length === 0) {
        ui.info(`${project} allows nothing beyond its zone. Add with: virtdev allow ${project} @debian`);
      } else for (const line of list) ui.result(line);
      return;
    }
    const given: AllowPattern[] = [];
    for (const text of patterns) {
      try {
        given.push(parseAllowPattern(text));
      } catch (error) {
        if (!(error instanceof AllowPatternError)) throw error;
        throw new VirtdevError(error.message, { exitCode: ExitCode.invalidName, hint: "Nothing was changed." });
      }
    }
    const keys = new Set(given.map(formatAllowPattern));
    const next = remove
      ? kept.filter((pattern) => !keys.has(formatAllowPattern(pattern)))
      : [...kept, ...given.filter((p) => !kept.some((k) => formatAllowPattern(k) === formatAllowPattern(p)))];
    if (remove) {
      const missing = [...keys].filter((key) => !kept.some((k) => formatAllowPattern(k) === key));
      if (missing.length > 0) ui.warn(`not in the allowlist of ${project}: ${missing.join(", ")}.`);
    }
    await writeAllowlist(paths, next);
    // The kept zone must still read with it (a custom zone's own lines are checked too).
    await resolvePolicy(paths, { configDir: config.configDir, zone: "allow" });
    const applied = await applyNet(paths, { configDir: config.configDir, dnsUpstream: config.dnsUpstream });
    ui.success(
      `Allowlist of ${project}: ${next.length} pattern${next.length === 1 ? "" : "s"}${
        applied === "now" ? " (in force now)" : ""
      }.`,
    );
    if (json) ui.result(JSON.stringify(next.map(formatAllowPattern)));
  },
});
