import assert from "node:assert/strict";
import { describeGeneration, isStale, parseGeneration } from "../src/core/store/generation.ts";

Deno.test("generation files parse into numbers, detached, missing or corrupt", () => {
  assert.deepEqual(parseGeneration("3\n"), { kind: "number", value: "3" });
  assert.deepEqual(parseGeneration("detached\n"), { kind: "detached" });
  assert.deepEqual(parseGeneration(undefined), { kind: "missing" });
  assert.deepEqual(parseGeneration("x1"), { kind: "corrupt", raw: "x1" });
  assert.equal(describeGeneration(parseGeneration("")), "?");
});

Deno.test("staleness compares generations as strings; detached is never stale", () => {
  const n = (value: string) => parseGeneration(value);
  assert.equal(isStale(n("1"), n("1")), false);
  assert.equal(isStale(n("1"), n("2")), true);
  assert.equal(isStale(n("01"), n("1")), true);
  assert.equal(isStale(n("detached"), n("9")), false);
  assert.equal(isStale(parseGeneration(undefined), n("1")), true);
  assert.equal(isStale(n("1"), parseGeneration(undefined)), true);
});
