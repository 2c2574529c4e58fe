import assert from "node:assert/strict";
import { formatSize, parseSize } from "../src/core/store/size.ts";

Deno.test("parseSize reads qemu-style sizes", () => {
  assert.equal(parseSize("512"), 512);
  assert.equal(parseSize("1K"), 1024);
  assert.equal(parseSize("24G"), 24 * 1024 ** 3);
  assert.equal(parseSize("24g"), 24 * 1024 ** 3);
  assert.equal(parseSize("1.5G"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("2GiB"), 2 * 1024 ** 3);
  assert.equal(parseSize("3MB"), 3 * 1024 ** 2);
  assert.equal(parseSize("1T"), 1024 ** 4);
});

Deno.test("parseSize rejects what is not a size", () => {
  for (const text of ["", "G", "abc", "-1G", "1X", "1 G B", "1e9", "0x10", "1.G"]) {
    assert.throws(() => parseSize(text), RangeError, text);
  }
});

Deno.test("formatSize prints binary units", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1536), "1.50 KiB");
  assert.equal(formatSize(24 * 1024 ** 3), "24.0 GiB");
});
