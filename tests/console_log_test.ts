/**
 * The console log on the host: a cap that holds whatever the guest writes,
 * markers found across any chunk boundary, tails read from the end.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CappedLog, FileFollower, MarkerScanner, readFileTail } from "../src/core/vm/console_log.ts";
import { formatTimeline, lastBootTimeline, parseTimeline } from "../src/core/vm/boot_timeline.ts";
import { appendVmLog, vmLogRotateBytes } from "../src/core/vm/vm_log.ts";
import type { ProjectPaths } from "../src/core/store/store.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("markers are found wherever a chunk boundary falls, once each, in order", () => {
  const stream = "boot...\nVIRTDEV-NOT-READY\nretry\nVIRTDEV-READY\nlogin: ";
  for (let size = 1; size <= stream.length; size++) {
    const scanner = new MarkerScanner(["VIRTDEV-READY", "VIRTDEV-NOT-READY"]);
    const seen: string[] = [];
    for (let i = 0; i < stream.length; i += size) seen.push(...scanner.push(bytes(stream.slice(i, i + size))));
    assert.deepEqual(seen, ["VIRTDEV-NOT-READY", "VIRTDEV-READY"], `chunks of ${size}`);
  }
});

Deno.test("a marker split by a flood of other bytes is not invented, and memory stays small", () => {
  const scanner = new MarkerScanner(["VIRTDEV-READY"]);
  assert.deepEqual(scanner.push(bytes("VIRTDEV-")), []);
  assert.deepEqual(scanner.push(new Uint8Array(1 << 20).fill(0x41)), []);
  assert.deepEqual(scanner.push(bytes("READY")), []);
  assert.deepEqual(scanner.push(bytes("xxVIRTDEV-READYxx")), ["VIRTDEV-READY"]);
});

Deno.test("the capped log never holds more than its cap, and keeps the newest bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "console.log");
    await Deno.writeTextFile(path, "previous boot\n");
    const log = await CappedLog.create(path, { maxBytes: 64 * 1024 });
    assert.equal(await Deno.readTextFile(`${path}.1`), "previous boot\n", "the previous boot moved aside");
    let written = 0;
    for (let i = 0; i < 2000; i++) {
      const line = bytes(`line ${i} ${"x".repeat(i % 300)}\n`);
      await log.write(line);
      written += line.length;
      const total = (await Deno.stat(path)).size + ((await Deno.stat(`${path}.1`).catch(() => ({ size: 0 }))).size);
      assert.ok(total <= 64 * 1024, `after ${written} bytes the log holds ${total}`);
    }
    await log.write(new Uint8Array(1 << 20).fill(0x42)); // one write far over the cap
    log.close();
    const total = (await Deno.stat(path)).size + (await Deno.stat(`${path}.1`)).size;
    assert.ok(total <= 64 * 1024, `${total}`);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.ok(written > 4 * 64 * 1024, "the test wrote well past the cap");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tails come from the end; a follower reads each byte once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "log");
    await Deno.writeTextFile(path, "a".repeat(100_000) + "the end\n");
    assert.equal(await readFileTail(path, 8), "the end\n");
    assert.equal(await readFileTail(join(dir, "missing"), 8), undefined);
    const follower = new FileFollower(path, { maxBytes: 1000 });
    let total = 0;
    for (let chunk = await follower.read(); chunk.length > 0; chunk = await follower.read()) total += chunk.length;
    assert.equal(total, 100_008);
    await Deno.writeTextFile(path, "more\n", { append: true });
    assert.equal(new TextDecoder().decode(await follower.read()), "more\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a boot timeline line reads back as it was written, whatever precedes it in vm.log", () => {
  const line = formatTimeline([{ name: "qmp", seconds: 0.214 }, { name: "ssh login", seconds: 21.5 }]);
  assert.equal(line, "boot timeline: qmp 0.21s, ssh login 21.50s");
  const parsed = parseTimeline(`2026-12-02T10:00:00.000Z ${line}`);
  assert.deepEqual([...parsed], [["qmp", 0.21], ["ssh login", 21.5]]);
  assert.equal(parseTimeline("2026-12-02T10:00:00.000Z started: port 2222").size, 0);
});

Deno.test("the last boot's timeline joins its ready line with the lines after it, and nothing of earlier boots", () => {
  const at = (line: string) => `2026-12-02T10:00:00.000Z ${line}`;
  const log = [
    at(formatTimeline([{ name: "qmp", seconds: 0.1 }, { name: "getty", seconds: 30 }, { name: "ready", seconds: 31 }])),
    at(formatTimeline([{ name: "ssh login", seconds: 33 }])),
    at("stopped"),
    at(formatTimeline([{ name: "qmp", seconds: 0.2 }, { name: "ready", seconds: 25 }])),
    at(formatTimeline([{ name: "ssh login", seconds: 27 }])),
    at(formatTimeline([{ name: "getty", seconds: 28 }])),
  ].join("\n");
  assert.deepEqual([...lastBootTimeline(log)], [["qmp", 0.2], ["ready", 25], ["ssh login", 27], ["getty", 28]]);
  assert.equal(lastBootTimeline("").size, 0);
  // A resume's login counts from its own QEMU: it is not the boot's (CI42's bench showed "ssh login 1.23" for one).
  const resumed = [
    log,
    at("direct kernel; resumed from its suspended state: port 2222, tcg"),
    at(formatTimeline([{ name: "ssh login", seconds: 1.2 }])),
  ].join("\n");
  assert.deepEqual([...lastBootTimeline(resumed)], [["qmp", 0.2], ["ready", 25], ["ssh login", 27], ["getty", 28]]);
});

Deno.test("vm.log: writes nobody waits for go one at a time, rotate at 1 MiB, and a flood is counted, not queued", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = { vmLog: join(dir, "vm.log") } as ProjectPaths;
    const line = "x".repeat(1000);
    // Unawaited, as a handler of guest markers would call it: 20,000 calls at once.
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 20_000; i++) calls.push(appendVmLog(paths, `${line} ${i}`));
    await Promise.all(calls);
    const text = await Deno.readTextFile(paths.vmLog);
    const kept = text.split("\n").filter((l) => l.includes(line));
    assert.ok(kept.length > 0 && kept.length <= 256, `${kept.length} lines written of 20,000`);
    assert.match(text, /\(\d+ log lines dropped: they came faster than they could be written\)/);
    // In order: the numbers written rise.
    const numbers = kept.map((l) => Number(l.split(" ").at(-1)));
    assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b));
    // Awaited writes past the rotation size: the live file stays near 1 MiB, the rest in vm.log.1.
    for (let i = 0; i < 1200; i++) await appendVmLog(paths, line);
    const live = (await Deno.stat(paths.vmLog)).size;
    assert.ok(live <= vmLogRotateBytes + 1100, `vm.log is ${live} bytes`);
    assert.ok((await Deno.stat(`${paths.vmLog}.1`)).size > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
