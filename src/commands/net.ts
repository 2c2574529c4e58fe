import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { UsageError } from "../core/store/errors.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { stripTerminalControls } from "../core/guest/terminal_text.ts";
import { FileFollower } from "../core/vm/console_log.ts";
import { applyNet, runningNet } from "../core/vm/net_control.ts";
import { egressRules } from "../core/vm/egress/zone_policy.ts";
import { hostView } from "../core/vm/egress/net_filter.ts";
import { formatAllowPattern } from "../core/vm/egress/allow_pattern.ts";
import {
  type BlockedEntry,
  parseBlockedLines,
  readBlockedLog,
  summarizeBlocked,
} from "../core/vm/egress/blocked_log.ts";
import {
  blockedLogPath,
  checkZoneName,
  readAllowlist,
  readProjectZone,
  resolvePolicy,
  writeProjectZone,
} from "../core/vm/egress/zone_settings.ts";

/** `virtdev net <project> [ZONE]`, `--rules`, `--log [-f]`, `--json`: what the guest may reach. */
export const netCommand = defineCommand("net", {
  brief: `Show or set what a project's guest may reach: none, allow, wan, lan, full, or a custom zone.`,
  description:
    `none: nothing. allow: only the names and addresses in the project's allowlist ('virtdev allow'). wan: the internet, not this host nor the LAN nor private, link-local or CGNAT ranges. lan: the internet and the LAN, not this host. full: also this host's other addresses. No zone ever reaches the host's loopback. New projects get wan. A change applies to a running VM at once (a VM started in none takes it at its next start); 'start --net' sets the zone for one boot. --rules prints the rules the zone stands for; --log shows what was blocked.`,
  takesProject: true,
  options: {
    json: flagOption(["--json"], `Print JSON.`),
    rules: flagOption(["--rules"], `Print the rules of the zone, in the order the filter applies them.`),
    log: flagOption(["--log"], `Show the blocked attempts: time, name or address, port, protocol, how many.`),
    follow: flagOption(["-f", "--follow"], `With --log: keep printing new attempts.`),
  },
  positionals: {
    project: projectPositional,
    zone: { metavar: "ZONE", optional: true },
  },
  async run({ project, zone, json, rules, log, follow }, { store, ui, config }) {
    const paths = await requireProject(store, project);
    if (follow && !log) throw new UsageError("-f goes with --log.", { hint: `virtdev net ${project} --log -f` });
    if (log) {
      if (zone !== undefined) throw new UsageError("--log takes no zone.");
      const entries = summarizeBlocked(await readBlockedLog(blockedLogPath(paths)));
      if (json && !follow) {
        ui.result(JSON.stringify(entries));
        return;
      }
      if (entries.length === 0 && !follow) ui.info(`Nothing blocked for ${project}.`);
      for (const entry of entries) ui.result(_line(entry, json));
      if (follow) {
        const follower = new FileFollower(blockedLogPath(paths));
        await follower.read();
        for (;;) {
          const text = new TextDecoder().decode(await follower.read());
          for (const entry of parseBlockedLines(text)) ui.result(_line(entry, json));
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      return;
    }
    if (zone !== undefined) {
      await checkZoneName(config.configDir, zone);
      // Read it all before anything changes: a bad allowlist line stops here.
      await resolvePolicy(paths, { configDir: config.configDir, zone });
      await writeProjectZone(paths, zone);
      const applied = await applyNet(paths, { configDir: config.configDir, zone, dnsUpstream: config.dnsUpstream });
      if (applied === "next-start") {
        ui.info(
          `${project} runs without the egress filter (started in zone none); '${zone}' applies from its next start.`,
        );
      } else {
        ui.success(`Zone of ${project}: ${zone}${applied === "now" ? " (in force now)" : ""}.`);
      }
      if (!json) return;
    }
    const kept = await readProjectZone(paths);
    const running = await runningNet(paths);
    if (!json && !rules) {
      ui.result(kept);
      if (running && running.zone !== kept) ui.info(`${project} runs in zone ${running.zone} (set for this boot).`);
      return;
    }
    const shownZone = running?.zone ?? kept;
    const policy = await resolvePolicy(paths, { configDir: config.configDir, zone: shownZone });
    const ruleList = egressRules(policy, hostView()).map((rule) => `${rule.action} ${rule.matches}`);
    if (json) {
      ui.result(JSON.stringify({
        project,
        zone: kept,
        running: running ? { zone: running.zone, blocked: running.blocked } : null,
        base: policy.zone,
        allow: (await readAllowlist(paths)).map(formatAllowPattern),
        rules: ruleList,
      }));
      return;
    }
    for (const rule of ruleList) ui.result(rule);
  },
});

function _line(entry: BlockedEntry & { last?: string }, json: boolean): string {
  if (json) return JSON.stringify(entry);
  const target = stripTerminalControls(entry.target);
  const name = entry.name && entry.name !== entry.target ? ` (${stripTerminalControls(entry.name)})` : "";
  const port = entry.port === undefined ? "" : ` port ${entry.port}`;
  return `${entry.last ?? entry.time}  ${entry.protocol.padEnd(4)} ${target}${port}${name}  ×${entry.count}  ${
    stripTerminalControls(entry.rule)
  }`;
}
