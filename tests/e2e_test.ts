/**
 * End to end on a real Debian guest under QEMU (TCG here): install from a
 * cloud image, seal, create, start, wait, ssh, transfer, stop, crash
 * recovery, the port race, host-key pinning and the generation gate.
 *
 * Runs when VIRTDEV_E2E=1 (as .ci/run sets it); the guest is installed
 * once per test run (see _guest.ts). Takes several minutes under TCG.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { e2eEnabled, sealedGuestSandbox } from "./_guest.ts";
import { exists, killVms, runtimeFiles, sh, spawnVirtdev, virtdev } from "./_helpers.ts";
import { lastBootTimeline } from "../src/core/vm/boot_timeline.ts";

Deno.test({
  name: "e2e: from a cloud image to project VMs reachable over pinned SSH (real guest, TCG)",
  ignore: !e2eEnabled,
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const { sandbox, install } = await sealedGuestSandbox();
  const run = async (...args: string[]) => await virtdev(sandbox, args);
  const ok = async (...args: string[]) => {
    const result = await run(...args);
    assert.equal(result.code, 0, `virtdev ${args.join(" ")} → ${result.code}\n${result.stderr}`);
    return result;
  };
  const projectDir = (name: string) => join(sandbox.virtdevHome, "projects", name);

  try {
    await t.step("key → install --image → seal → create a, b", async () => {
      assert.match(install, /Applying the guest contract/);
      assert.match(install, /Installer finished/);
      await ok("create", "a");
      await ok("create", "b");
      const keyA = await Deno.readTextFile(join(projectDir("a"), "known_hosts"));
      const keyB = await Deno.readTextFile(join(projectDir("b"), "known_hosts"));
      assert.match(keyA, /^virtdev-a ssh-ed25519 /);
      assert.notEqual(keyA.split(" ")[2], keyB.split(" ")[2], "each project has its own host key");
    });

    await t.step("two starts at once: the second queues behind the first, and they get different ports", async () => {
      const starts = await Promise.all(["a", "b"].map((name) => spawnVirtdev(sandbox, ["start", name]).output()));
      for (const result of starts) assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
      const portA = (await ok("port", "a")).stdout.trim();
      const portB = (await ok("port", "b")).stdout.trim();
      assert.match(portA, /^\d+$/);
      assert.notEqual(portA, portB);
    });

    await t.step("wait: both guests accept pinned SSH, each with its own hostname", async () => {
      await ok("wait", "a");
      await ok("wait", "b");
      assert.equal((await ok("ssh", "a", "hostname")).stdout.trim(), "a");
      assert.equal((await ok("ssh", "b", "hostname")).stdout.trim(), "b");
      // The agent logged in at the ready line and holds that connection: wait needed no login of its own,
      // and ssh rides it. On the host, that connection is the one to the project's port while nobody else logs in.
      const agent = JSON.parse(await Deno.readTextFile(join(projectDir("a"), "run", "agent.json")));
      assert.deepEqual(agent.login, { ok: true });
      const port = (await ok("port", "a")).stdout.trim();
      const held = await sh("ss", ["-Htn", "state", "established", `( dst 127.0.0.1:${port} )`]);
      assert.equal(held.trim().split("\n").filter((line) => line !== "").length, 1, held);
      // This boot's timeline: the agent's milestones, then wait's first login,
      // in order. The serial getty may come after the login: wait for it.
      let log = "";
      let milestones = new Map<string, number>();
      for (let i = 0; i < 600 && !milestones.has("getty"); i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
        log = await Deno.readTextFile(join(sandbox.virtdevHome, "projects/a/vm.log"));
        milestones = lastBootTimeline(log);
      }
      // The getty and the ready line come up side by side; the rest in this order. The base keeps its kernel
      // (the install handed it over), so the boot goes straight to it: no boot loader.
      assert.match(log, /direct kernel; started:/);
      const order = ["qmp", "console", "ready", "ssh login"];
      assert.deepEqual([...order, "getty"].filter((name) => milestones.has(name)), [...order, "getty"], log);
      assert.equal(milestones.has("bootloader"), false, log);
      const times = order.map((name) => milestones.get(name)!);
      assert.deepEqual([...times].sort((x, y) => x - y), times, `milestones in boot order: ${log}`);
      assert.ok(milestones.get("getty")! > milestones.get("console")!);
    });

    await t.step("ssh: sudo, exit codes, stdin scripts", async () => {
      await ok("ssh", "a", "--", "sudo", "-n", "true");
      assert.equal((await run("ssh", "a", "--", "false")).code, 1);
      assert.equal((await run("ssh", "a", "--", "exit", "7")).code, 7);
      const script = await virtdev(sandbox, ["ssh", "a", "--", "bash", "-s"], {
        stdin: 'echo "user=$(id -un) home=$HOME"\nmountpoint -q /home && echo home-mounted\n',
      });
      assert.equal(script.code, 0, script.stderr);
      assert.equal(script.stdout, "user=dev home=/home/dev\nhome-mounted\n");
    });

    await t.step("transfer round-trips a file byte for byte", async () => {
      const original = join(sandbox.root, "blob with space.bin");
      await Deno.writeFile(original, crypto.getRandomValues(new Uint8Array(65536)));
      await ok("transfer", "a", original, ":blob.bin");
      const back = join(sandbox.root, "back.bin");
      await ok("transfer", "a", ":blob.bin", back);
      assert.deepEqual(await Deno.readFile(back), await Deno.readFile(original));
      assert.equal((await run("transfer", "a", original, back)).code, 9);
      assert.equal((await run("transfer", "a", ":x", ":y")).code, 10);
    });

    await t.step("status, port, pid, list and the monitor while running", async () => {
      assert.equal((await ok("status", "a")).stdout.trim(), "running");
      const pid = Number((await ok("pid", "a")).stdout.trim());
      assert.ok(pid > 1);
      const status = JSON.parse((await ok("status", "--json", "a")).stdout);
      assert.equal(status.pid, pid);
      assert.equal(status.supervisor, "process");
      const list = JSON.parse((await ok("list", "--json")).stdout);
      const ours = list.filter((p: { name: string }) => ["a", "b"].includes(p.name));
      assert.deepEqual(ours.map((p: { name: string; status: string }) => [p.name, p.status]), [
        ["a", "running"],
        ["b", "running"],
      ]);
      const monitor = await virtdev(sandbox, ["monitor", "a"], { stdin: "info status\n" });
      assert.equal(monitor.code, 0, monitor.stderr);
      assert.match(monitor.stdout, /VM status: running/);
    });

    await t.step("stop: status stopped and no runtime files left", async () => {
      await ok("stop", "b");
      assert.equal((await ok("status", "b")).stdout.trim(), "stopped");
      for (const file of runtimeFiles(sandbox, "b")) assert.equal(await exists(file), false, file);
      assert.equal((await run("stop", "b")).code, 4);
      assert.equal((await run("ssh", "b", "true")).code, 5);
    });

    await t.step(
      "crash: kill -9 of QEMU → stopped → start works again; then a kernel panic: told in 5 s, QEMU ended",
      async () => {
        const pid = Number((await ok("pid", "a")).stdout.trim());
        Deno.kill(pid, "SIGKILL");
        for (let i = 0; i < 100 && (await ok("status", "a")).stdout.trim() !== "stopped"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal((await ok("status", "a")).stdout.trim(), "stopped");
        assert.equal(await exists(join(projectDir("a"), "run/qemu.pid")), true, "the crash left its pidfile behind");
        const start = await ok("start", "a");
        assert.match(start.stderr, /Cleaned up after a VM that had ended/);
        await ok("wait", "a");
        assert.equal((await ok("ssh", "a", "hostname")).stdout.trim(), "a");
        // A kernel panic, from root in the guest: pvpanic pauses QEMU, the host agent ends it and says why.
        // The guest says when it is a second from the panic: what is timed is the agent's notice, not how
        // long this test's CLI processes take to start on a loaded host (a cold Deno start each).
        const panicking = spawnVirtdev(sandbox, [
          "ssh",
          "a",
          "--",
          "sudo sh -c 'echo armed; sleep 1; echo c > /proc/sysrq-trigger'",
        ]);
        await panicking.stdin.close();
        const said = panicking.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let armed = "";
        while (!armed.includes("\n")) {
          const { value, done } = await said.read();
          if (done) break;
          armed += value;
        }
        const panicAt = Date.now() + 1000;
        assert.equal(armed, "armed\n");
        await said.cancel();
        await panicking.status;
        const waited = await run("wait", "a");
        for (let i = 0; i < 50 && !(await ok("status", "a")).stdout.startsWith("stopped"); i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const endToEnd = (Date.now() - panicAt) / 1000;
        assert.equal(waited.code, 12, waited.stderr);
        assert.match(waited.stderr, /the guest kernel panicked/);
        assert.match((await ok("status", "a")).stdout, /^stopped \(the guest kernel panicked, /);
        const halt = JSON.parse((await ok("status", "--json", "a")).stdout).halt;
        const seconds = (Date.parse(halt.at) - panicAt) / 1000;
        assert.ok(seconds < 5, `the agent noticed the panic ${seconds} s after it (${JSON.stringify(halt)})`);
        assert.match(
          await Deno.readTextFile(join(projectDir("a"), "vm.log")),
          // The panic's first line: the tail reaches back past the whole call trace.
          /console: .*Kernel panic - not syncing/,
        );
        // deno-lint-ignore no-console -- the figure the issue asks to see, beside the test.
        console.log(
          `    a kernel panic: the agent noticed it ${seconds.toFixed(1)} s after, and QEMU was gone and status ` +
            `told it ${endToEnd.toFixed(1)} s after (this test's CLI starts included)`,
        );
      },
    );

    await t.step("a guest presenting another host key is refused", async () => {
      // The guest gets a new key by fw_cfg; the pinned known_hosts stays.
      const dir = projectDir("a");
      await Deno.remove(join(dir, "host_key"));
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
      await Deno.remove(join(dir, "host_key.pub"));
      await ok("start", "a");
      const wait = await run("wait", "a");
      assert.equal(wait.code, 8, wait.stderr);
      assert.match(wait.stderr, /host key other than the one pinned/);
      // The agent's own login at the ready line was refused the same way, and gave up at once.
      const agent = JSON.parse(await Deno.readTextFile(join(dir, "run", "agent.json")));
      assert.equal(agent.login?.ok, false, JSON.stringify(agent));
      assert.match(
        await Deno.readTextFile(join(dir, "vm.log")),
        /the first login failed: .*(Host key|HOST IDENTIFICATION)/,
      );
      const ssh = await run("ssh", "a", "true");
      assert.equal(ssh.code, 255);
      assert.match(ssh.stderr, /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
      await ok("stop", "a");
    });

    await t.step("start refuses a project made on another base generation", async () => {
      await Deno.writeTextFile(join(projectDir("b"), "generation"), "999\n");
      const start = await run("start", "b");
      assert.equal(start.code, 11, start.stderr);
      assert.match(start.stderr, /project generation 999, base 1/);
      assert.equal((await ok("status", "b")).stdout.trim(), "stopped");
    });
  } finally {
    // Never leave a VM running behind a failed step.
    await killVms(sandbox, ["a", "b"]);
  }
});
