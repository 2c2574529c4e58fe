/**
 * End to end on the real guest: the host disk under a project fills up.
 * The project's directory is a small tmpfs; the guest writes more than it
 * holds, QEMU pauses the guest (a failed write), `status` says so, `wait`
 * exits 12, `start` while still full exits 16, and once the tmpfs is made
 * larger `start` resumes the guest, which finishes its write with its data
 * intact. Needs root (mount). Runs when VIRTDEV_E2E=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copiedGuestSandbox, e2eEnabled } from "./_guest.ts";
import { killVms, sh, virtdev } from "./_helpers.ts";

const project = "full";

Deno.test({
  name: "e2e: a host disk that fills up pauses the guest, and start resumes it with its data (real guest, TCG)",
  ignore: !e2eEnabled,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const sandbox = await copiedGuestSandbox();
  const run = (...args: string[]) => virtdev(sandbox, args);
  const ok = async (...args: string[]) => {
    const result = await run(...args);
    assert.equal(result.code, 0, `virtdev ${args.join(" ")} → ${result.code}\n${result.stderr}`);
    return result;
  };
  const dir = join(sandbox.virtdevHome, "projects", project);
  let mounted = false;
  const until = async (what: string, test: () => Promise<boolean>, seconds: number) => {
    const deadline = Date.now() + seconds * 1000;
    while (!await test()) {
      assert.ok(Date.now() < deadline, `not within ${seconds} s: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  const tmpfsUsedMiB = async () =>
    Number((await sh("df", ["-BM", "--output=used", dir])).split("\n")[1].trim().replace("M", ""));
  try {
    await ok("create", project);
    // The project's files move onto a tmpfs of their own, mounted where the project lives.
    const aside = `${dir}.aside`;
    await Deno.rename(dir, aside);
    await Deno.mkdir(dir, { mode: 0o700 });
    await sh("mount", ["-t", "tmpfs", "-o", "size=1G,mode=0700", "tmpfs", dir]);
    mounted = true;
    await sh("cp", ["-a", `${aside}/.`, `${dir}/`]);
    await Deno.remove(aside, { recursive: true });
    await ok("start", project);
    await ok("wait", project);

    // Room for what the boot wrote and 48 MiB more; the guest writes 128 MiB and records their sum first.
    await sh("mount", ["-o", `remount,size=${(await tmpfsUsedMiB()) + 48}M`, dir]);
    await ok(
      "ssh",
      project,
      "--",
      "sudo systemd-run --unit=fill --quiet sh -c 'head -c 128M /dev/urandom > /tmp/fill.src && sha256sum < /tmp/fill.src > /home/dev/want && cp /tmp/fill.src /home/dev/fill && sync && sha256sum < /home/dev/fill > /home/dev/got'",
    );
    await until(
      "status says paused",
      async () => (await run("status", project)).stdout.trim() === "paused (a disk write failed (host disk full?))",
      180,
    );
    const json = JSON.parse((await ok("status", "--json", project)).stdout);
    assert.equal(json.halt.state, "io-error");
    const wait = await run("wait", project);
    assert.equal(wait.code, 12, wait.stderr);
    assert.match(wait.stderr, /host disk full/);

    // Still full: the guest pauses again at once.
    const again = await run("start", project);
    assert.equal(again.code, 16, again.stderr);

    await sh("mount", ["-o", "remount,size=2G", dir]);
    const resumed = await ok("start", project);
    assert.match(resumed.stderr, /Resumed full/);
    await until(
      "the write finishes",
      async () => (await run("ssh", project, "--", "test -s /home/dev/got")).code === 0,
      180,
    );
    const sums = (await ok("ssh", project, "--", "cat /home/dev/want /home/dev/got")).stdout.trim().split("\n");
    assert.equal(sums.length, 2);
    assert.equal(sums[0], sums[1], "what the guest wrote while the disk was full reads back whole");
    assert.equal((await run("status", project)).stdout.trim(), "running");
    await ok("stop", project);
  } finally {
    await killVms(sandbox, [project]);
    if (mounted) await sh("umount", ["-l", dir]).catch(() => {});
  }
});
