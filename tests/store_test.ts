import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidNameError } from "../src/core/store/errors.ts";
import { isValidProjectName, Store, validateProjectName } from "../src/core/store/store.ts";

Deno.test("name rule accepts letters, digits, '_' and '-' up to 64 characters", () => {
  for (const name of ["a", "my-project", "Under_score", "x".repeat(64), "0abc", "a-"]) {
    assert.equal(isValidProjectName(name), true, name);
  }
});

Deno.test("name rule rejects traversal, separators, leading dash, empty, 65 characters, spaces and non-ASCII", () => {
  for (const name of ["../x", "a/b", "-x", "", "x".repeat(65), "name with space", "ü", ".", "..", "a\nb", "a.b"]) {
    assert.equal(isValidProjectName(name), false, JSON.stringify(name));
    assert.throws(() => validateProjectName(name), (error: unknown) => {
      assert.ok(error instanceof InvalidNameError);
      assert.equal(error.exitCode, 2);
      return true;
    });
  }
});

Deno.test("project enumeration skips files, invalid names, hidden work and reserved names", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new Store(root);
    assert.deepEqual(await store.listProjects(), []);
    for (const dir of ["beta", "alpha", "maintenance", "base", ".create-x-1", "bad name", "-x"]) {
      await Deno.mkdir(join(store.projectsDir, dir), { recursive: true });
    }
    await Deno.writeTextFile(join(store.projectsDir, "file"), "");
    await Deno.symlink("/", join(store.projectsDir, "link"));
    assert.deepEqual(await store.listProjects(), ["alpha", "beta"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
