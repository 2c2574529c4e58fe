/**
 * The fast parser against the full one (Optique): on every command line the
 * fast parser accepts, both must produce the same values. Lines are drawn
 * from each command's own syntax: known and unknown options, both value
 * spellings, good and bad values, too few and too many positionals, `--`.
 */
import assert from "node:assert/strict";
import { loadAllCommands } from "../src/cli/commands.ts";
import { parseFast } from "../src/cli/fast_parse.ts";
import { parseFull } from "../src/cli/full_parse.ts";
import type { Command, OptionSpec } from "../src/cli/spec.ts";
import type { Io } from "../src/ui/io.ts";

const quietIo: Io = {
  out: () => {},
  err: () => {},
  readLine: () => Promise.resolve(null),
  stderrIsTerminal: false,
  stdinIsTerminal: false,
  stdoutIsTerminal: false,
};

/** A small deterministic generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function optionWords(spec: OptionSpec, pick: <T>(items: readonly T[]) => T): string[] {
  const name = pick(spec.names);
  if (spec.kind === "flag") return pick([[name], [name], [`${name}=yes`]]);
  const value = spec.value ?? { type: "string" };
  const good = value.type === "choice"
    ? pick(value.choices)
    : value.type === "integer"
    ? pick(["1", "3", "007"])
    : pick(["x", "a,b", "some path", "-dash"]);
  const bad = value.type === "choice" ? "nope" : value.type === "integer" ? pick(["0", "-2", "1.5", "x"]) : "";
  const text = pick([good, good, good, bad]);
  if (!name.startsWith("--")) return [name, text];
  return pick([[name, text], [`${name}=${text}`], [name]]);
}

function randomLine(command: Command, next: () => number): string[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const words: string[] = [];
  for (const spec of Object.values(command.options)) {
    if (next() < 0.4) words.push(...optionWords(spec, pick));
  }
  if (next() < 0.2) words.push(...pick([["--color", pick(["yes", "no", "auto", "pink"])], ["--color=no"]]));
  if (next() < 0.1) words.push(pick(["--no-such-option", "-q", "--help", "-vy", "-"]));
  const positionals: string[] = [];
  for (const spec of Object.values(command.positionals)) {
    const count = spec.variadic ? Math.floor(next() * 3) : spec.optional ? pick([0, 1]) : pick([1, 1, 1, 0]);
    for (let i = 0; i < count; i++) {
      positionals.push(spec.choices ? pick([...spec.choices, "other"]) : pick(["web", "a-b", "x y", "-dash", ""]));
    }
  }
  if (next() < 0.1) positionals.push("extra");
  // Options and positionals interleave; '--' may come before the positionals.
  const line = [...words];
  if (next() < 0.2) line.push("--");
  for (const word of positionals) line.splice(Math.floor(next() * (line.length + 1)), 0, word);
  return line;
}

Deno.test("where the fast parser accepts a line, the full parser reads the same values from it", async () => {
  const commands = await loadAllCommands();
  let accepted = 0;
  let compared = 0;
  for (const command of commands) {
    const next = random(command.name.length * 7919);
    for (let round = 0; round < 300; round++) {
      const line = randomLine(command, next);
      const fast = parseFast(command, line);
      if (fast === undefined) continue;
      accepted++;
      const full = parseFull([command], [command.name, ...line], { io: quietIo, version: "test" });
      assert.ok(!("exitCode" in full), `${command.name} ${JSON.stringify(line)}: the full parser refused it`);
      assert.deepEqual(
        { values: full.values, color: full.color },
        { values: fast.values, color: fast.color },
        `${command.name} ${JSON.stringify(line)}`,
      );
      compared++;
    }
  }
  // The generator must give the fast parser real work, or this test proves nothing.
  assert.ok(accepted > commands.length * 30, `only ${accepted} lines were accepted`);
  assert.equal(compared, accepted);
});

Deno.test("the fast parser takes the usual lines and leaves help, unknown options and bad values alone", async () => {
  const commands = new Map((await loadAllCommands()).map((command) => [command.name, command]));
  const take = (name: string, line: string[]) => parseFast(commands.get(name)!, line);
  assert.deepEqual(take("list", ["--json"])?.values, { json: true });
  assert.deepEqual(take("start", ["web", "2300", "--net", "none"])?.values, {
    project: "web",
    port: "2300",
    net: "none",
    ephemeral: false,
    stale: false,
    cold: false,
  });
  assert.deepEqual(take("ssh", ["web", "--", "ls", "-la"])?.values, { project: "web", command: ["ls", "-la"] });
  assert.deepEqual(take("backup", ["--keep=3", "web"])?.values, {
    project: "web",
    keep: 3,
    verbose: false,
    list: false,
    json: false,
    latest: false,
  });
  assert.equal(take("status", ["web", "--color", "no"])?.color, "no");
  for (
    const [name, line] of [
      ["list", ["--help"]],
      ["list", ["-h"]],
      ["list", ["--json", "--json"]],
      ["status", []],
      ["status", ["a", "b"]],
      ["start", ["web", "--net"]],
      ["backup", ["web", "--keep", "0"]],
      ["backup", ["web", "-vl"]],
      ["ssh", ["web", "ls", "-la"]],
      ["start", ["-x"]],
    ] as const
  ) {
    assert.equal(take(name, [...line]), undefined, `${name} ${line.join(" ")}`);
  }
});

Deno.test("every option name starts with '-', and no two options of a command share one", async () => {
  for (const command of await loadAllCommands()) {
    const names = Object.values(command.options).flatMap((spec) => spec.names);
    for (const name of names) assert.match(name, /^--?[a-z]/, `${command.name} ${name}`);
    assert.equal(new Set([...names, "--color"]).size, names.length + 1, command.name);
  }
});
