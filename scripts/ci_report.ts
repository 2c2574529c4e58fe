/**
 * Where a CI run's time went: seconds per test file (from `deno test
 * --junit-path` reports) and the QEMU runs CI's wrapper recorded (one line
 * per run as it ended: "<seconds> <name>"). A run of 20 s or more counts as
 * a guest boot: no guest reaches SSH sooner under TCG, and the short runs
 * are firmware-only VMs and KVM probes.
 *
 *   deno run --allow-read scripts/ci_report.ts --qemu-log FILE [--max-boots N] REPORT.xml...
 *
 * Exits 1 when more than `--max-boots` guest boots were counted.
 *
 * @module
 */

/** The shortest QEMU run counted as a guest boot, in seconds. */
export const guestBootSeconds = 20;

/** Seconds per test file in a JUnit report from `deno test`. */
export function secondsPerFile(xml: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const match of xml.matchAll(/<testcase\b[^>]*>/g)) {
    const file = /classname="([^"]*)"/.exec(match[0])?.[1];
    const time = Number(/time="([0-9.]+)"/.exec(match[0])?.[1] ?? "0");
    if (file === undefined) continue;
    files.set(file, (files.get(file) ?? 0) + time);
  }
  return files;
}

/** QEMU runs by name: how many were guest boots and how many short runs. */
export function qemuRuns(log: string): Map<string, { boots: number; short: number }> {
  const runs = new Map<string, { boots: number; short: number }>();
  for (const line of log.split("\n")) {
    const match = /^(\d+) (.*)$/.exec(line.trim());
    if (!match) continue;
    const name = match[2] || "(unnamed)";
    const entry = runs.get(name) ?? { boots: 0, short: 0 };
    if (Number(match[1]) >= guestBootSeconds) entry.boots++;
    else entry.short++;
    runs.set(name, entry);
  }
  return runs;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const option = (name: string): string | undefined => {
    const at = args.indexOf(name);
    return at < 0 ? undefined : args.splice(at, 2)[1];
  };
  const qemuLog = option("--qemu-log");
  const maxBoots = option("--max-boots");
  const lines: string[] = [];
  const files = new Map<string, number>();
  for (const report of args) {
    const xml = await Deno.readTextFile(report).catch(() => "");
    for (const [file, seconds] of secondsPerFile(xml)) files.set(file, (files.get(file) ?? 0) + seconds);
  }
  lines.push("ci: seconds per test file (all its tests, as deno test timed them):");
  for (const [file, seconds] of [...files].sort((a, b) => b[1] - a[1])) {
    if (seconds >= 1) {
      lines.push(`ci:   ${file.replace(/^\.\/tests\//, "").padEnd(28)} ${seconds.toFixed(0).padStart(5)}s`);
    }
  }
  let boots = 0;
  if (qemuLog !== undefined) {
    const runs = qemuRuns(await Deno.readTextFile(qemuLog).catch(() => ""));
    let short = 0;
    for (const entry of runs.values()) {
      boots += entry.boots;
      short += entry.short;
    }
    const byName = [...runs].filter(([, entry]) => entry.boots > 0).map(([name, entry]) => `${name} ${entry.boots}`);
    lines.push(`ci: guest boots (QEMU runs of ${guestBootSeconds} s or more): ${boots}; shorter QEMU runs: ${short}`);
    lines.push(`ci:   by VM name: ${byName.join(", ") || "none"}`);
  }
  // deno-lint-ignore no-console -- the report is this script's output.
  console.log(lines.join("\n"));
  if (maxBoots !== undefined && boots > Number(maxBoots)) {
    // deno-lint-ignore no-console -- as above.
    console.log(`ci: FAILED: ${boots} guest boots, more than ${maxBoots}`);
    Deno.exit(1);
  }
}
