/**
 * rsync against a hostile peer, with the real rsync and a remote shell that
 * runs the "guest" side locally: the link-dest attack that munged links
 * stop (and a control run without them, which the attack wins, so the test
 * can fail), exact links on the way back, version and name parsing.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import {
  itemizedSymlinks,
  mungePrefix,
  parseRsyncStats,
  parseRsyncVersion,
  rsyncCopyOptions,
  unmungeSymlinks,
  versionAtLeast,
} from "../src/core/guest/rsync.ts";

Deno.test("rsync --stats: every entry counts (files, directories, symlinks)", () => {
  const stats = parseRsyncStats(`
Number of files: 2,031 (reg: 2,010, dir: 20, link: 1)
Number of created files: 2,031 (reg: 2,010, dir: 20, link: 1)
Number of regular files transferred: 3
Total file size: 20,123,456 bytes
`);
  assert.deepEqual(stats, { entries: 2031, transferred: 3, totalBytes: 20123456 });
  assert.equal(parseRsyncStats("Number of files: 2 (dir: 1, link: 1)\n").entries, 2);
  assert.equal(parseRsyncStats("Number of files: 0\n").entries, 0);
});

Deno.test("rsync versions: 3.4.0 and later pass, older ones and garbage do not", () => {
  assert.deepEqual(parseRsyncVersion("rsync  version 3.5.0  protocol version 32\nCopyright"), [3, 5, 0]);
  assert.deepEqual(parseRsyncVersion("rsync  version v3.2.7  protocol version 31"), [3, 2, 7]);
  assert.equal(parseRsyncVersion("openrsync: protocol version 29"), undefined);
  assert.ok(versionAtLeast([3, 4, 0], [3, 4, 0]));
  assert.ok(versionAtLeast([3, 10, 0], [3, 4, 0]));
  assert.ok(versionAtLeast([4, 0, 0], [3, 4, 0]));
  assert.ok(!versionAtLeast([3, 3, 9], [3, 4, 0]));
  assert.ok(!versionAtLeast([2, 9, 9], [3, 4, 0]));
});

Deno.test("itemized output: the symlinks rsync made, with \\#ooo escapes decoded", () => {
  const names = itemizedSymlinks(
    ["cL+++++++++ a/link", "cd+++++++++ a/", ">f+++++++++ a/file", "cL+++++++++ n\\#012l", ".L..t...... old", ""]
      .join("\n"),
  );
  assert.deepEqual(names, ["a/link", "n\\#012l", "n\nl", "old"]);
});

/** A remote shell for rsync that runs the peer locally: `lssh <host> <command…>`. */
async function localShell(dir: string): Promise<string> {
  const path = join(dir, "lssh");
  await Deno.writeTextFile(path, '#!/bin/sh\nshift\nexec "$@"\n', { mode: 0o755 });
  return path;
}

async function rsync(args: readonly string[], stdin: string): Promise<{ code: number; stdout: string }> {
  const child = new Deno.Command("rsync", { args: [...args], stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

/**
 * Two backups of a guest that first plants symlinks into the host and then
 * regular files shaped like the host's secret behind the same names.
 * Returns whether the second snapshot shares an inode with the secret.
 */
async function linkDestAttack(options: readonly string[]): Promise<boolean> {
  const root = await Deno.makeTempDir({ prefix: "virtdev-rsync-" });
  try {
    const shell = await localShell(root);
    const host = join(root, "host");
    const guest = join(root, "guest");
    await Deno.mkdir(host);
    await Deno.mkdir(join(guest, "work"), { recursive: true });
    const secret = join(host, "id");
    await Deno.writeTextFile(secret, "-----BEGIN OPENSSH PRIVATE KEY-----\nhost secret\n", { mode: 0o600 });
    await Deno.utime(secret, 1_600_000_000, 1_600_000_000);
    const snapshot = (n: number) => join(root, "backups", String(n), "tree");
    await Deno.mkdir(snapshot(1), { recursive: true });
    await Deno.mkdir(snapshot(2), { recursive: true });
    // One absolute link and one relative to where the snapshot keeps it.
    await Deno.symlink(host, join(guest, "work/abs"));
    await Deno.symlink(relative(join(snapshot(1), "work"), host), join(guest, "work/rel"));
    const backup = async (n: number, linkDest?: string) => {
      const result = await rsync([
        ...options,
        ...(linkDest ? [`--link-dest=${linkDest}`] : []),
        "-e",
        shell,
        "--",
        `guest:${guest}/`,
        `${snapshot(n)}/`,
      ], "work\n");
      assert.equal(result.code, 0);
    };
    await backup(1);
    const info = await Deno.stat(secret);
    for (const name of ["abs", "rel"]) {
      await Deno.remove(join(guest, "work", name));
      await Deno.mkdir(join(guest, "work", name));
      const forged = join(guest, "work", name, "id");
      await Deno.writeFile(forged, new Uint8Array(info.size), { mode: 0o600 });
      await Deno.utime(forged, 1_600_000_000, 1_600_000_000);
    }
    await backup(2, snapshot(1));
    let shared = false;
    for (const name of ["abs", "rel"]) {
      const copy = await Deno.stat(join(snapshot(2), "work", name, "id"));
      if (copy.ino === info.ino && copy.dev === info.dev) shared = true;
    }
    return shared;
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("backup: a guest's symlinks cannot make --link-dest hard-link a host file into a snapshot", async () => {
  assert.ok(rsyncCopyOptions.includes("--munge-links"));
  assert.equal(await linkDestAttack(rsyncCopyOptions), false, "virtdev's options keep the host's file out");
  const unmunged = rsyncCopyOptions.filter((option) => option !== "--munge-links");
  assert.equal(await linkDestAttack(unmunged), true, "control: without munging the attack works");
});

Deno.test("restore: munged links come back exactly, absolute, relative and dangling", async () => {
  const root = await Deno.makeTempDir({ prefix: "virtdev-rsync-" });
  try {
    const shell = await localShell(root);
    const guest = join(root, "guest");
    const back = join(root, "back");
    const tree = join(root, "tree");
    await Deno.mkdir(join(guest, "links/empty"), { recursive: true });
    await Deno.mkdir(tree);
    await Deno.mkdir(back);
    const links = { abs: "/usr/bin/env", rel: "../links/abs", dangling: "nowhere/at all", munged: `${mungePrefix}x` };
    for (const [name, target] of Object.entries(links)) await Deno.symlink(target, join(guest, "links", name));
    const run = (from: string, to: string) =>
      rsync(
        [...rsyncCopyOptions, "-e", shell, "--", from, to],
        "links/abs\nlinks/rel\nlinks/dangling\nlinks/munged\nlinks/empty\n",
      );
    const backup = await run(`guest:${guest}/`, `${tree}/`);
    assert.equal(backup.code, 0);
    assert.equal(parseRsyncStats(backup.stdout).entries, 6, "4 links, the empty directory, and links/");
    for (const [name, target] of Object.entries(links)) {
      assert.equal(await Deno.readLink(join(tree, "links", name)), `${mungePrefix}${target}`, name);
    }
    assert.equal((await run(`${tree}/`, `guest:${back}/`)).code, 0);
    for (const [name, target] of Object.entries(links)) {
      assert.equal(await Deno.readLink(join(back, "links", name)), target, name);
    }
    assert.ok((await Deno.lstat(join(back, "links/empty"))).isDirectory);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("unmunge: the links an rsync run made come back as the guest sent them; nothing else changes", async () => {
  const root = await Deno.makeTempDir({ prefix: "virtdev-rsync-" });
  const outside = await Deno.makeTempDir({ prefix: "virtdev-outside-" });
  try {
    await Deno.mkdir(join(root, "d"));
    await Deno.symlink(`${mungePrefix}../target`, join(root, "d/link"));
    await Deno.symlink(`${mungePrefix}/etc/hostname`, join(root, "new\nline"));
    await Deno.symlink("plain", join(root, "d/plain"));
    await Deno.writeTextFile(join(root, "file"), "data");
    // A link the run made that leads to a directory with a munged link in it: never entered.
    await Deno.symlink(`${mungePrefix}x`, join(outside, "victim"));
    await Deno.symlink(`${mungePrefix}${outside}`, join(root, "via"));
    const code = await unmungeSymlinks(root, ["d/link", "new\nline", "d/plain", "via", "via/victim", "missing"]);
    assert.equal(code, 0);
    assert.equal(await Deno.readLink(join(root, "d/link")), "../target");
    assert.equal(await Deno.readLink(join(root, "new\nline")), "/etc/hostname");
    assert.equal(await Deno.readLink(join(root, "d/plain")), "plain");
    assert.equal(await Deno.readLink(join(root, "via")), outside);
    assert.equal(await Deno.readLink(join(outside, "victim")), `${mungePrefix}x`, "nothing beyond the link changed");
    assert.equal(await Deno.readTextFile(join(root, "file")), "data");
    assert.equal(await unmungeSymlinks(root, []), 0);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
