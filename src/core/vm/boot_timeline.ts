/**
 * Where a boot spends its time, from QEMU's spawn to the first login: the
 * host agent notes each milestone as the console streams past, and `wait`
 * adds the first authenticated SSH. One line per boot in vm.log, which the
 * bench reads.
 *
 * @module
 */
import { readinessLine } from "../guest/guest_contract.ts";

/** Console text that marks a milestone, in boot order. */
export const consoleMilestones: readonly { readonly name: string; readonly marker: string }[] = [
  // OVMF hands over to the boot loader.
  { name: "bootloader", marker: "BdsDxe: starting" },
  // The serial getty logs dev in: systemd has reached its login targets.
  { name: "getty", marker: "(automatic login)" },
  { name: "ready", marker: readinessLine },
];

/** The prefix of a timeline line in vm.log. */
export const timelinePrefix = "boot timeline:";

/** One line of milestones, in seconds since QEMU was spawned. */
export function formatTimeline(milestones: readonly { readonly name: string; readonly seconds: number }[]): string {
  return `${timelinePrefix} ${milestones.map((m) => `${m.name} ${m.seconds.toFixed(2)}s`).join(", ")}`;
}

/** The milestones of a timeline line (the rest of a vm.log line is ignored). */
export function parseTimeline(line: string): Map<string, number> {
  const found = new Map<string, number>();
  const at = line.indexOf(timelinePrefix);
  if (at === -1) return found;
  for (const match of line.slice(at + timelinePrefix.length).matchAll(/([a-z -]+?) (\d+(?:\.\d+)?)s/g)) {
    found.set(match[1].trim(), Number(match[2]));
  }
  return found;
}

/**
 * The milestones of the last boot in a vm.log's text: its ready line (the
 * one that starts with QEMU's spawn), and every timeline line after it
 * (the first login, a late getty) up to a resume, whose login counts from
 * its own QEMU's spawn.
 */
export function lastBootTimeline(vmLog: string): Map<string, number> {
  const lines = vmLog.split("\n").filter((line) => line.includes(timelinePrefix) || _resumeMarker.test(line));
  let first = lines.length - 1;
  while (first > 0 && !parseTimeline(lines[first]).has("qmp")) first--;
  const boot = lines.slice(Math.max(first, 0));
  const resumed = boot.findIndex((line) => _resumeMarker.test(line));
  return new Map(
    (resumed === -1 ? boot : boot.slice(0, resumed)).flatMap((line) => [...parseTimeline(line)]),
  );
}

/** Where vm.log says a VM resumed from a saved state (`vm_lifecycle.ts`): its QEMU is a new one. */
const _resumeMarker = /^\S+ (?:direct kernel; )?resumed (?:from its suspended state|a disposable run)/;
