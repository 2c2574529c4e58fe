/**
 * Where a CI run's time went: seconds per test file (from `deno test
 * --junit-path` reports) and the QEMU runs CI's wrapper recorded (one line
 * per run as it ended: "<seconds> <kind> <name>", the kind being `boot` for
 * a VM on a real sealed base, `install` for the installer, `other` for
 * firmware-only VMs, KVM probes and version queries). An install that ran
 * 30 s or more counts as a boot too; a shorter one is a test's refusal.
 *
 *   deno run --allow-read scripts/ci_report.ts --qemu-log FILE [--extra-boots NAME=N]... [--max-boots N] REPORT.xml...
 *
 * `--extra-boots` adds boots the wrapper cannot see (the systemd
 * container's QEMU runs from the container's own PATH). Exits 1 when more
 * than `--max-boots` guest boots were counted.
 *
 * @module
 */

/** The shortest installer run counted as a boot, in seconds. */
export const installBootSeconds = 30;

/** Seconds per test file in a JUnit report from `deno test` (its tests; their steps are inside them). */
export function secondsPerFile(xml: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const match of xml.matchAll(/<testcase\b[^>]*>/g)) {
    // A step is "test &gt; step": its time is already in its test's.
    if (/name="[^"]*&gt; /.test(match[0])) continue;
    const file = /classname="([^"]*)"/.exec(match[0])?.[1];
    const time = Number(/time="([0-9.]+)"/.exec(match[0])?.[1] ?? "0");
    if (file === undefined) continue;
    files.set(file, (files.get(file) ?? 0) + time);
  }
  return files;
}

/**
 * A CI wrapper log read: guest boots by VM name, resumes from a suspended
 * state (`resume`: no boot, a few seconds each), and the other QEMU runs.
 */
export function qemuRuns(
  log: string,
): { readonly boots: Map<string, number>; readonly resumes: number; readonly other: number } {
  const boots = new Map<string, number>();
  let other = 0;
  let resumes = 0;
  for (const line of log.split("\n")) {
    const match = /^(\d+) (boot|install|resume|other) (.*)$/.exec(line.trim());
    if (!match) continue;
    if (match[2] === "resume") {
      resumes++;
      continue;
    }
    const seconds = Number(match[1]);
    const isBoot = match[2] === "boot" || (match[2] === "install" && seconds >= installBootSeconds);
    if (isBoot) boots.set(match[3], (boots.get(match[3]) ?? 0) + 1);
    else other++;
  }
  return { boots, resumes, other };
}

if (import.meta.main) {
  const args = [...Deno.args];
  const option = (name: string): string | undefined => {
    const at = args.indexOf(name);
    return at < 0 ? undefined : args.splice(at, 2)[1];
  };
  const qemuLog = option("--qemu-log");
  const maxBoots = option("--max-boots");
  const extra = new Map<string, number>();
  for (let given = option("--extra-boots"); given !== undefined; given = option("--extra-boots")) {
    const [name, count] = given.split("=");
    extra.set(name, Number(count) || 0);
  }
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
    for (const [name, count] of extra) runs.boots.set(name, (runs.boots.get(name) ?? 0) + count);
    for (const count of runs.boots.values()) boots += count;
    const byName = [...runs.boots].map(([name, count]) => `${name} ${count}`);
    lines.push(
      `ci: guest boots (VMs on a real base, and installs): ${boots}${
        maxBoots === undefined ? "" : ` (at most ${maxBoots})`
      }; resumes: ${runs.resumes}; other QEMU runs: ${runs.other}`,
    );
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
