/**
 * End to end on the real guest: state survives. Backup and restore of a
 * tree with every kind of file, deduplicated snapshots, recreate with
 * provisioning, recreate resumed after a failed step, bad manifests refused
 * up front, and a tampered snapshot that cannot write outside /home/dev.
 * Runs when VIRTDEV_E2E=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { rsyncCopyOptions } from "../src/core/guest/rsync.ts";
import { rsyncRemoteShell, sshDestination } from "../src/core/guest/ssh.ts";
import { e2eEnabled, sealedGuestSandbox } from "./_guest.ts";
import { killVms, sh, virtdev } from "./_helpers.ts";

const project = "data";

const makeTree = `set -e
cd ~
mkdir -p work/a/b/c .config/app
echo deep > work/a/b/c/deep.txt
echo secret > work/secret.txt && chmod 600 work/secret.txt
printf '#!/bin/sh\\necho hi\\n' > work/run.sh && chmod 755 work/run.sh
ln -s a/b/c/deep.txt work/link-to-deep
ln work/a/b/c/deep.txt work/hardlink.txt
head -c 20000000 /dev/urandom > work/big.bin
mkdir work/many && cd work/many && seq 1 2000 | xargs touch && cd ~
for i in 1 2 3; do echo "$i" > "work/many/$i"; done
echo spaced > "work/name with spaces.txt"
touch -d '2020-01-02 03:04:05' work/secret.txt work/a/b
echo cfg > .config/app/settings
echo not-in-manifest > outside.txt
`;

// Files: path, mode, size, link count, mtime (whole seconds); directories:
// path, mode, mtime; symlinks: path and target; then every file's hash.
const listTree = `cd ~
find work .config/app -type f -printf '%p|f|%m|%s|%n|%T@\\n' | sed 's/\\.[0-9]*$//' | sort
find work .config/app -type d -printf '%p|d|%m|%T@\\n' | sed 's/\\.[0-9]*$//' | sort
find work .config/app -type l -printf '%p|l|%l\\n' | sort
find work .config/app -type f -print0 | sort -z | xargs -0 sha256sum
`;

Deno.test({
  name: "e2e: backup, restore, recreate with provisioning and resume (real guest, TCG)",
  ignore: !e2eEnabled,
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const { sandbox } = await sealedGuestSandbox();
  const run = async (args: string[], stdin?: string) => await virtdev(sandbox, args, { stdin });
  const ok = async (args: string[], stdin?: string) => {
    const result = await run(args, stdin);
    assert.equal(result.code, 0, `virtdev ${args.join(" ")} → ${result.code}\n${result.stderr}`);
    return result;
  };
  const guest = async (script: string) => (await ok(["ssh", project, "--", "bash", "-s"], script)).stdout;
  const projectDir = join(sandbox.virtdevHome, "projects", project);
  const backups = join(sandbox.virtdevHome, "backups", project);
  const configDir = join(sandbox.home, ".config/virtdev/projects", project);
  const manifest = join(configDir, "manifest");
  const diskKiB = async () => Number((await sh("du", ["-sk", backups])).split(/\s/)[0]);
  let listing = "";
  // Line by line, so that a failure shows the lines that differ.
  const assertSameTree = (actual: string) => assert.deepEqual(actual.split("\n"), listing.split("\n"));

  try {
    await t.step("a tree with every kind of file, listed", async () => {
      await ok(["create", project]);
      await ok(["start", project]);
      await ok(["wait", project]);
      await guest(makeTree);
      listing = await guest(listTree);
      assert.match(listing, /^work\/secret\.txt\|f\|600\|7\|1\|1577934245$/m);
      assert.match(listing, /^work\/hardlink\.txt\|f\|644\|5\|2\|/m);
      assert.match(listing, /^work\/link-to-deep\|l\|a\/b\/c\/deep\.txt$/m);
      assert.match(listing, /^work\/name with spaces\.txt\|f\|/m);
      assert.equal((listing.match(/^work\/many\/\d+\|f\|/gm) ?? []).length, 2000);
      await Deno.mkdir(configDir, { recursive: true });
      await Deno.writeTextFile(manifest, "# what provisioning cannot rebuild\nwork\n\n.config/app/\n");
    });

    let first = "";
    await t.step("backup prints only the snapshot id; a second one of the same tree costs under 1 MB", async () => {
      const backup = await ok(["backup", project]);
      assert.match(backup.stdout, /^\d{4}-\d{2}-\d{2}\/\d{2}-\d{2}-\d{2}\n$/);
      first = backup.stdout.trim();
      // Every entry counts: files, directories, symlinks, and the implied .config.
      const entries = (listing.match(/^[^|\n]+\|[fdl]\|/gm) ?? []).length + 1;
      assert.match(backup.stderr, new RegExp(`Backed up ${entries} entries`));
      const before = await diskKiB();
      const started = performance.now();
      const second = await ok(["backup", project]);
      const oursMs = performance.now() - started;
      const added = await diskKiB() - before;
      assert.notEqual(second.stdout.trim(), first, "same-second backups never collide");
      assert.ok(added < 1024, `the second snapshot added ${added} KiB`);
      assert.match(second.stderr, /\(0 files copied/);

      // The floor: the same rsync, by hand, into a scratch directory.
      const status = JSON.parse((await ok(["status", "--json", project])).stdout);
      const scratch = join(sandbox.root, "bare-rsync");
      await Deno.mkdir(scratch);
      const target = {
        project,
        port: status.port,
        identity: join(sandbox.virtdevHome, "ssh/id"),
        knownHosts: join(projectDir, "known_hosts"),
      };
      const bareStarted = performance.now();
      const bare = new Deno.Command("rsync", {
        args: [
          ...rsyncCopyOptions,
          `--link-dest=${join(backups, first, "tree")}`,
          "-e",
          rsyncRemoteShell(target),
          "--",
          `${sshDestination}:/home/dev/`,
          `${scratch}/`,
        ],
        stdin: "piped",
        stdout: "null",
      }).spawn();
      const writer = bare.stdin.getWriter();
      await writer.write(new TextEncoder().encode("work\n.config/app\n"));
      await writer.close();
      assert.equal((await bare.status).code, 0);
      const bareMs = performance.now() - bareStarted;
      // deno-lint-ignore no-console -- the numbers the issue asks to see, printed beside the test.
      console.log(
        `    second backup: virtdev ${oursMs.toFixed(0)} ms, bare rsync ${bareMs.toFixed(0)} ms (${
          (oursMs / bareMs).toFixed(2)
        }x); new disk ${added} KiB`,
      );
      const list = JSON.parse((await ok(["backup", "--list", "--json", project])).stdout);
      assert.equal(list.length, 2);
      assert.equal((await ok(["backup", "--latest", project])).stdout.trim(), second.stdout.trim());
    });

    await t.step("bad manifests are refused before anything runs", async () => {
      const ids = async () =>
        JSON.parse((await ok(["backup", "--list", "--json", project])).stdout).map((s: { id: string }) => s.id);
      const snapshots = await ids();
      for (
        const [text, code] of [
          ["/etc/passwd\n", 15],
          ["work/../../etc\n", 16],
          ["work\x07\n", 16],
          [" work\n", 16],
          ["# only a comment\n\n", 9],
        ] as const
      ) {
        await Deno.writeTextFile(manifest, text);
        const backup = await run(["backup", project]);
        assert.equal(backup.code, code, `${JSON.stringify(text)}: ${backup.stderr}`);
        assert.match(backup.stderr, code === 9 ? /lists no paths/ : /line 1: /);
      }
      await Deno.writeTextFile(manifest, "/etc\n");
      const recreate = await run(["recreate", "-y", project]);
      assert.equal(recreate.code, 5, recreate.stderr);
      assert.equal((await ok(["status", project])).stdout.trim(), "running", "recreate changed nothing");
      assert.deepEqual(await ids(), snapshots, "no snapshot was made");
    });

    const provision = join(sandbox.home, "provision.sh");
    await t.step(
      "recreate --no-restore with a provision script: the data is wiped and the script's file exists; restore brings every file back exactly",
      async () => {
        await Deno.writeTextFile(manifest, "work\n.config/app\n");
        await Deno.writeTextFile(
          provision,
          "set -e\nsudo install -m 644 /dev/null /opt/provisioned\necho provisioned-ok\n",
        );
        // The project's own choices outlive the rebuild: zone, allowlist, size, forwards, port.
        await ok(["net", project, "lan"]);
        await ok(["allow", project, "10.9.9.9:5432"]);
        await ok(["set", project, "memory=1000M"]);
        await ok(["forward", project, "18001:8000"]);
        const port = (await ok(["port", project])).stdout.trim();
        // One boot for both: the plan's seven steps run, restore is skipped.
        const recreate = await ok(["recreate", "--no-restore", "-y", "--provision", provision, project]);
        assert.match(recreate.stderr, /Kept: settings\.json, net, allow, forwards\.json, port\./);
        assert.equal((await ok(["net", project])).stdout.trim(), "lan", "the zone");
        assert.equal((await ok(["allow", project])).stdout.trim(), "10.9.9.9:5432", "the allowlist");
        assert.equal(JSON.parse((await ok(["status", "--json", project])).stdout).memoryMiB, 1000, "the size");
        assert.deepEqual(
          JSON.parse((await ok(["forward", "--list", "--json", project])).stdout).map((f: { host: number }) => f.host),
          [18001],
          "the forwards",
        );
        assert.equal((await ok(["port", project])).stdout.trim(), port, "the port");
        await ok(["forward", "--remove", project, "18001"]);
        assert.match(recreate.stderr, /\[1\/7\] backup/);
        assert.match(recreate.stderr, /\[7\/7\] provision/);
        assert.match(recreate.stderr, /provisioned-ok/);
        assert.match(recreate.stderr, /-- restore +\(skipped: --no-restore\)/);
        assert.match(recreate.stderr, /Project recreated: data \(restore skipped\)/);
        assert.equal((await guest("test -f /opt/provisioned && echo yes")).trim(), "yes");
        assert.equal((await guest("test -e ~/work && echo yes || echo no")).trim(), "no");
        const restore = await ok(["restore", project]);
        assert.match(
          restore.stderr,
          new RegExp(`Restored ${(listing.match(/^[^|\n]+\|[fdl]\|/gm) ?? []).length + 1} entries`),
        );
        assertSameTree(await guest(listTree));
        assert.equal((await guest("test -e ~/outside.txt && echo yes || echo no")).trim(), "no");
      },
    );

    await t.step("a failed provision step prints a resume command that works", async () => {
      await Deno.writeTextFile(provision, "echo about-to-fail\nexit 3\n");
      const failed = await run(["recreate", "-y", "--provision", provision, project]);
      assert.equal(failed.code, 26, failed.stderr);
      assert.match(failed.stderr, /provision script .* failed with exit 3/);
      const resume = /Resume with: (virtdev recreate .*)$/m.exec(failed.stderr)?.[1];
      assert.ok(resume, failed.stderr);
      assert.match(resume, /--from provision --snapshot \d{4}-\d{2}-\d{2}\/\d{2}-\d{2}-\d{2} /);
      assert.equal((await guest("test -e ~/work && echo yes || echo no")).trim(), "no", "not yet restored");
      await Deno.writeTextFile(provision, "set -e\nsudo touch /opt/provisioned-again\n");
      const resumed = await ok(resume.split(" ").slice(1));
      assert.match(resumed.stderr, /-- backup +\(skipped: resuming from provision\)/);
      assert.equal((await guest("test -f /opt/provisioned-again && echo yes")).trim(), "yes");
      assertSameTree(await guest(listTree));
    });

    await t.step(
      "a tampered snapshot: its links come back as links, and nothing is written outside /home/dev",
      async () => {
        const latest = (await ok(["backup", "--latest", project])).stdout.trim();
        const forged = "2099-01-01/00-00-00";
        const forgedDir = join(backups, forged);
        await Deno.mkdir(join(backups, "2099-01-01"));
        await sh("cp", ["-a", join(backups, latest), forgedDir]);
        await Deno.symlink("/tmp", join(forgedDir, "tree/work/escape-absolute"));
        await Deno.symlink("../../../../tmp", join(forgedDir, "tree/work/escape-relative"));
        // Adding the links touched work/; give it back its recorded time.
        await sh("touch", ["-r", join(backups, latest, "tree/work"), join(forgedDir, "tree/work")]);
        // The guest's own link where the snapshot has a directory (work/a): a
        // restore that kept receiver-side links to directories (rsync -K)
        // would write work/a/b/c/deep.txt into /tmp/virtdev-probe.
        await guest(
          "rm -rf ~/work; sudo rm -rf /tmp/virtdev-probe; mkdir /tmp/virtdev-probe ~/work; ln -s /tmp/virtdev-probe ~/work/a",
        );
        const restore = await ok(["restore", project, forged]);
        assert.match(restore.stderr, /Restored/);
        // In the guest they are the guest's own links: restored as they are, never followed.
        assert.equal(
          (await guest("readlink ~/work/escape-absolute ~/work/escape-relative")).trim(),
          "/tmp\n../../../../tmp",
        );
        assert.equal((await guest("ls -A /tmp/virtdev-probe | wc -l")).trim(), "0", "nothing written through a link");
        assert.equal((await guest("test -d ~/work/a && ! test -L ~/work/a && echo dir")).trim(), "dir");
        await guest("rm ~/work/escape-absolute ~/work/escape-relative");
        await guest(
          `touch -d @${Math.floor((await Deno.stat(join(forgedDir, "tree/work"))).mtime!.getTime() / 1000)} ~/work`,
        );
        assertSameTree(await guest(listTree));

        // A manifest path through a symlink would make rsync read the host beyond the tree.
        await Deno.writeTextFile(join(forgedDir, "manifest"), "work/escape-absolute/passwd\n");
        const unsafe = await run(["restore", project, forged]);
        assert.equal(unsafe.code, 25, unsafe.stderr);
        assert.equal((await guest("test -e ~/work/escape-absolute && echo yes || echo no")).trim(), "no");
        assert.equal((await run(["restore", project, "2099-01-01"])).code, 79);
        assert.equal((await run(["restore", project, "2001-01-01/00-00-00"])).code, 16);
      },
    );

    await t.step("--keep prunes the oldest snapshots, never the new one", async () => {
      const before = JSON.parse((await ok(["backup", "--list", "--json", project])).stdout).length;
      assert.ok(before > 2);
      const backup = await ok(["backup", "--keep", "2", project]);
      const after = JSON.parse((await ok(["backup", "--list", "--json", project])).stdout);
      assert.equal(after.length, 2);
      // The forged 2099 snapshot sorts last, so the new one is kept beside it.
      assert.ok(after.some((s: { id: string }) => s.id === backup.stdout.trim()));
    });

    await t.step("restore works on a detached project", async () => {
      await ok(["stop", project]);
      await ok(["detach", "-y", project]);
      assert.equal((await ok(["generation", project])).stdout.trim(), "detached");
      await ok(["start", project]);
      await ok(["wait", project]);
      await guest("rm -rf ~/work");
      await ok([
        "restore",
        project,
        (await ok(["backup", "--list", "--json", project])).stdout.match(/"id":"([^"]+)"/)![1],
      ]);
      assertSameTree(await guest(listTree));
      await ok(["stop", project]);
    });
  } finally {
    await killVms(sandbox, [project]);
  }
});
