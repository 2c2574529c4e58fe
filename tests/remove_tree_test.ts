/**
 * Removing trees whose directories carry a guest's modes (000, 0555,
 * sticky), as an owner without privileges: CI runs as root, so the
 * removal runs in a child without the capabilities that ignore modes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { asOwnerPrefix, exists, repoRoot, sealedSandbox, virtdev } from "./_helpers.ts";

/** Runs `code` (a module body) in a Deno child that file modes bind, as they bind a user. */
async function asOwner(code: string): Promise<{ code: number; stderr: string }> {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(script, code);
  const argv = [...asOwnerPrefix, Deno.execPath(), "run", "--quiet", "--allow-read", "--allow-write", script];
  const output = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "null", stderr: "piped" }).output();
  await Deno.remove(script);
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

/** A snapshot tree as a hostile guest leaves it, and a directory outside it that a link points at. */
async function hostileTree(root: string, outside = join(root, "outside")): Promise<{ tree: string; outside: string }> {
  const tree = join(root, "snapshot/tree");
  for (const dir of ["locked", "readonly/sub", "sticky", "deep/a/b"]) {
    await Deno.mkdir(join(tree, dir), { recursive: true });
  }
  for (const file of ["locked/f", "readonly/sub/f", "sticky/f", "deep/a/b/f"]) {
    await Deno.writeTextFile(join(tree, file), "x");
  }
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "keep"), "kept");
  await Deno.chmod(outside, 0o555);
  await Deno.symlink(outside, join(tree, "link"));
  await Deno.chmod(join(tree, "readonly/sub"), 0o555);
  await Deno.chmod(join(tree, "readonly"), 0o555);
  await Deno.chmod(join(tree, "sticky"), 0o1777);
  await Deno.chmod(join(tree, "deep/a"), 0o000);
  await Deno.chmod(join(tree, "locked"), 0o000);
  return { tree, outside };
}

Deno.test("guest-made directory modes (000, 0555, sticky) do not stop a removal, and links out are not followed", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { tree, outside } = await hostileTree(root);
    const snapshot = join(tree, "..");
    // The control: a plain recursive remove, as the owner, fails on these modes.
    const plain = await asOwner(`await Deno.remove(${JSON.stringify(snapshot)}, { recursive: true });`);
    assert.notEqual(plain.code, 0, "a plain remove went through: the modes bind nothing here");
    assert.match(plain.stderr, /Permission denied|PermissionDenied/);
    const module = new URL("../src/core/store/remove_tree.ts", `file://${repoRoot}/`).href;
    const done = await asOwner(`import { removeTree } from ${JSON.stringify(module)};
await removeTree(${JSON.stringify(snapshot)});
await removeTree(${JSON.stringify(join(root, "no-such"))});`);
    assert.equal(done.code, 0, done.stderr);
    await assert.rejects(Deno.lstat(snapshot), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(join(outside, "keep")), "kept", "the link's target is untouched");
    assert.equal((await Deno.stat(outside)).mode! & 0o7777, 0o555, "and its mode too");
  } finally {
    await new Deno.Command("chmod", { args: ["-R", "u+rwx", root] }).output();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("nuke completes over backups whose trees carry a guest's modes, as an owner the modes bind", async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const outside = join(sandbox.root, "outside");
  await hostileTree(join(sandbox.virtdevHome, "backups/web/2026-12-05"), outside);
  const done = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n", prefix: asOwnerPrefix });
  assert.equal(done.code, 0, done.stderr);
  assert.equal(await exists(sandbox.virtdevHome), false);
  assert.equal(await Deno.readTextFile(join(outside, "keep")), "kept", "the link's target is untouched");
  await Deno.chmod(outside, 0o755);
});

Deno.test({
  name: "a removal that cannot take everything (another user's entry) exits 73, names what is left, and stops at that",
  // Only root can give an entry to another user; CI runs as root.
  ignore: Deno.uid() !== 0,
}, async () => {
  await using sandbox = await sealedSandbox();
  assert.equal((await virtdev(sandbox, ["create", "web"])).code, 0);
  const foreign = join(sandbox.virtdevHome, "backups/web/2026-12-05/00-00-00/tree/foreign");
  await Deno.mkdir(foreign, { recursive: true });
  await Deno.writeTextFile(join(foreign, "f"), "x");
  await Deno.chown(foreign, 4242, 4242);
  await Deno.chmod(foreign, 0o555);
  const done = await virtdev(sandbox, ["nuke"], { stdin: "nuke\n", prefix: asOwnerPrefix });
  assert.equal(done.code, 73, done.stderr);
  assert.match(done.stderr, new RegExp(`Could not remove ${sandbox.virtdevHome} whole`));
  assert.match(done.stderr, /hint: .*sudo rm -rf -- /);
  assert.equal(await Deno.readTextFile(join(foreign, "f")), "x", "what could not go is still there");
  await Deno.chmod(foreign, 0o755);
});
