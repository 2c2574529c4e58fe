import assert from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, isAbsolute, join, normalize, relative, resolve } from "../src/core/store/path.ts";

const samples = [
  "",
  "/",
  "//",
  "a",
  "a/",
  "/a",
  "/a/",
  "a/b",
  "/a/b/c",
  "/a//b///c/",
  "./a",
  "../a",
  "a/..",
  "a/../..",
  "/..",
  "/../a",
  "a/./b/../c",
  ".",
  "..",
  "./",
  "../",
  "a/b/..",
  "/a/b/../../..",
  "x y/z",
  "/run/user/1000/virtdev",
  "projects/web/run/qmp.sock",
  "...",
  "a/.../b",
  ".hidden/x",
];

Deno.test("normalize, join, dirname, basename and isAbsolute agree with node:path", () => {
  for (const path of samples) {
    assert.equal(normalize(path), node.posix.normalize(path), `normalize ${JSON.stringify(path)}`);
    assert.equal(dirname(path), node.posix.dirname(path), `dirname ${JSON.stringify(path)}`);
    assert.equal(basename(path), node.posix.basename(path), `basename ${JSON.stringify(path)}`);
    assert.equal(isAbsolute(path), node.posix.isAbsolute(path), `isAbsolute ${JSON.stringify(path)}`);
    for (const other of samples) {
      assert.equal(join(path, other), node.posix.join(path, other), `join ${JSON.stringify([path, other])}`);
    }
  }
  assert.equal(join(), node.posix.join());
  assert.equal(join("a", "", "b"), node.posix.join("a", "", "b"));
});

Deno.test("resolve and relative agree with node:path", () => {
  for (const path of samples) {
    assert.equal(resolve(path), node.posix.resolve(path), `resolve ${JSON.stringify(path)}`);
    assert.equal(resolve("/base", path), node.posix.resolve("/base", path), `resolve /base ${JSON.stringify(path)}`);
    for (const other of samples) {
      assert.equal(
        relative(path, other),
        node.posix.relative(path, other),
        `relative ${JSON.stringify([path, other])}`,
      );
    }
  }
});
