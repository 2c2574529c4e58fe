/**
 * End to end on the real guest: the base lives through time. upgrade -y
 * of a running project with maintenance hooks, stale projects whose base is
 * kept (start --stale, backup, recreate, detach, gc), maintain -y refused while a
 * project runs, a reseal killed mid-swap and recovered by start, and
 * sessions that end badly (virtdev stop maintenance, a kernel panic, a
 * killed QEMU) leave the base byte-identical. On a copy of the shared
 * base. Runs when VIRTDEV_E2E=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copiedGuestSandbox, e2eEnabled } from "./_guest.ts";
import { type CliResult, exists, killVms, type Sandbox, sh, spawnVirtdev, virtdev } from "./_helpers.ts";

/** A CLI run whose stderr can be waited on while it runs. */
function spawnWatched(sandbox: Sandbox, args: readonly string[], env: Record<string, string> = {}) {
  const child = spawnVirtdev(sandbox, args, { env });
  child.stdin.close();
  let stderr = "";
  const stdoutText = new Response(child.stdout).text();
  const stderrDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  const done: Promise<CliResult> = (async () => {
    const status = await child.status;
    await stderrDone;
    return { code: status.signal === "SIGKILL" ? 137 : status.code, stdout: await stdoutText, stderr };
  })();
  return {
    done,
    async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      let ended = false;
      done.then(() => ended = true);
      while (!pattern.test(stderr)) {
        if (ended) throw new Error(`ended before ${pattern}:\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    },
    kill: (signal: Deno.Signal = "SIGKILL") => {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    },
  };
}

async function checksums(sandbox: Sandbox): Promise<string> {
  const base = join(sandbox.virtdevHome, "system");
  return await sh("sha256sum", ["system.qcow2", "home.qcow2", "nvram", "generation"].map((f) => join(base, f)));
}

Deno.test({
  name: "e2e: upgrade and maintain with hooks, stale projects, reseal crash, aborted sessions (real guest, TCG)",
  ignore: !e2eEnabled,
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const sandbox = await copiedGuestSandbox();
  const run = async (args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) =>
    await virtdev(sandbox, args, options);
  const ok = async (args: string[], stdin?: string) => {
    const result = await run(args, { stdin });
    assert.equal(result.code, 0, `virtdev ${args.join(" ")} → ${result.code}\n${result.stderr}`);
    return result;
  };
  const generation = async () => (await ok(["generation"])).stdout.trim();
  const config = join(sandbox.home, ".config/virtdev");
  const secret = crypto.randomUUID();

  try {
    await t.step("a base at generation 1; project a with a manifest and data, b without one", async () => {
      assert.equal(await generation(), "1");
      await ok(["create", "a"]);
      await ok(["create", "b"]);
      await Deno.mkdir(join(config, "projects/a"), { recursive: true });
      await Deno.writeTextFile(join(config, "projects/a/manifest"), "work/\n");
      await ok(["start", "a"]);
      await ok(["wait", "a"]);
      await ok(["ssh", "a", "--", "bash", "-s"], `mkdir -p ~/work && echo ${secret} > ~/work/data.txt\n`);
      // a stays up: upgrade backs up a running project where it runs and leaves it running after its rebuild.
      await Deno.mkdir(join(config, "maintenance"), { recursive: true });
      await Deno.writeTextFile(
        join(config, "maintenance/provision"),
        [
          "set -e",
          "echo 'provision: writing the marker'",
          "echo maintained | sudo tee /etc/virtdev-marker >/dev/null",
          // A kernel upgrade, as far as the boot files go: the default kernel and initramfs under new names.
          "n=$(date +%s)",
          'sudo cp "$(readlink -f /vmlinuz)" "/boot/vmlinuz-virtdev-test-$n"',
          'sudo cp "$(readlink -f /initrd.img)" "/boot/initrd.img-virtdev-test-$n"',
          'sudo ln -sf "/boot/vmlinuz-virtdev-test-$n" /vmlinuz',
          'sudo ln -sf "/boot/initrd.img-virtdev-test-$n" /initrd.img',
          "",
        ].join("\n"),
      );
      await Deno.writeTextFile(
        join(config, "maintenance/inventory"),
        "ls -1 /etc/virtdev-marker* 2>/dev/null || true\n",
      );
    });

    await t.step(
      "upgrade -y: backs up a, warns about b, shows the inventory diff, generation 2, rebuilds a",
      async () => {
        const result = await ok(["upgrade", "-y"]);
        assert.match(result.stderr, /b has no usable backup manifest/);
        assert.match(result.stderr, /\[Phase 1\/4\] Backing up/);
        assert.match(result.stderr, /provision: writing the marker/);
        assert.match(result.stderr, /^\+\/etc\/virtdev-marker$/m, "the inventory diff shows the marker");
        assert.match(result.stderr, /The guest powered itself off cleanly/);
        assert.match(result.stdout, /^a\s+1\s+2\s+\d{4}-\d\d-\d\d\/\d\d-\d\d-\d\d\s+upgraded$/m, result.stdout);
        assert.equal(await generation(), "2");
        assert.equal((await ok(["generation", "a"])).stdout.trim(), "2");
        assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), false);
        assert.equal(await exists(join(sandbox.virtdevHome, "projects/maintenance")), false);
        // The maintained base handed its new kernel over as it powered off.
        const id = await Deno.readTextFile(join(sandbox.virtdevHome, "system", "boot", "id"));
        assert.match(id, /^\/boot\/vmlinuz-virtdev-test-\d+ \d+ \d+\n\/boot\/initrd\.img-virtdev-test-\d+ /, id);
        assert.match(result.stderr, /It handed over its kernel/);
        assert.ok(await exists(join(sandbox.virtdevHome, "system", "boot", "vmlinux")), "and it was unpacked");
      },
    );

    await t.step("a runs again on generation 2, sees the marker and still has its data", async () => {
      const log = await Deno.readTextFile(join(sandbox.virtdevHome, "projects", "a", "vm.log"));
      assert.match(log.split("\n").filter((line) => line.includes("started:")).at(-1) ?? "", /direct kernel/);
      const runtime = JSON.parse(
        await Deno.readTextFile(join(sandbox.virtdevHome, "projects", "a", "run", "runtime.json")),
      );
      assert.ok(runtime.qemu.args.includes(join(sandbox.virtdevHome, "system", "boot", "vmlinux")), "its PVH kernel");
      assert.equal(await exists(join(sandbox.virtdevHome, "projects", "a", "kernel-diverged")), false);
      assert.match(
        (await ok(["ssh", "a", "--", "readlink", "/vmlinuz"])).stdout,
        /^\/boot\/vmlinuz-virtdev-test-\d+\n$/,
        "booted on the new kernel files",
      );
      assert.equal((await ok(["status", "a"])).stdout.trim(), "running", "a was running, so it runs again");
      assert.equal((await ok(["ssh", "a", "--", "cat", "/etc/virtdev-marker"])).stdout, "maintained\n");
      assert.equal((await ok(["ssh", "a", "--", "cat", "work/data.txt"])).stdout, `${secret}\n`);
    });

    await t.step("b is stale: start refuses it (11), stale lists b alone", async () => {
      const start = await run(["start", "b"]);
      assert.equal(start.code, 11, start.stderr);
      assert.equal((await ok(["stale"])).stdout, "b\n");
    });

    await t.step(
      "maintain -y is refused while a runs, naming a; once a is stopped it reaches generation 3",
      async () => {
        const before = await checksums(sandbox);
        const refused = await run(["maintain", "-y"]);
        assert.equal(refused.code, 7, refused.stderr);
        assert.match(refused.stderr, /Project VMs are running: a\b/);
        assert.equal(await checksums(sandbox), before);
        await ok(["stop", "a"]);
        // The inventory's diff is upgrade's check above: this session skips its extra boot.
        const result = await ok(["maintain", "-y", "--no-inventory"]);
        assert.match(result.stderr, /generation 2 → 3/);
        assert.match(result.stderr, /The reseal leaves a on generation 2 \(stale\)/, "named before the reseal");
        assert.equal(await generation(), "3");
      },
    );

    const kept = (n: number) => join(sandbox.virtdevHome, "generations", String(n));
    await t.step(
      "stranded a: its base is kept, start --stale reads its data, backup saves it, recreate moves it to generation 3 with its data",
      async () => {
        assert.equal(await exists(kept(1)), true, "b's base (generation 1) is kept");
        assert.equal(await exists(kept(2)), true, "a's base (generation 2) is kept");
        const refused = await run(["start", "a"]);
        assert.equal(refused.code, 11, refused.stderr);
        assert.match(refused.stderr, /virtdev start --stale a/);
        await ok(["start", "--stale", "a"]);
        await ok(["wait", "a"]);
        assert.equal((await ok(["ssh", "a", "--", "cat", "work/data.txt"])).stdout, `${secret}\n`);
        const backup = await ok(["backup", "a"]);
        assert.match(backup.stdout, /^\d{4}-\d\d-\d\d\/\d\d-\d\d-\d\d$/m);
        await ok(["recreate", "-y", "a"]);
        assert.equal((await ok(["generation", "a"])).stdout.trim(), "3");
        assert.equal((await ok(["ssh", "a", "--", "cat", "work/data.txt"])).stdout, `${secret}\n`, "restored");
        assert.equal(await exists(kept(2)), false, "generation 2 went with its last project");
        await ok(["stop", "a"]);
      },
    );

    await t.step("detach of stale b merges onto generation 1's bytes; gc then removes generation 1", async () => {
      // A reference chain: b's deltas over hard links of the kept base, compared with what detach makes.
      const reference = await Deno.makeTempDir({ dir: sandbox.virtdevHome, prefix: ".reference-" });
      try {
        for (const disk of ["system.qcow2", "home.qcow2"]) {
          await Deno.link(join(kept(1), disk), join(reference, `base-${disk}`));
          await Deno.copyFile(join(sandbox.virtdevHome, "projects/b", disk), join(reference, disk));
          await sh("qemu-img", [
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            join(reference, `base-${disk}`),
            join(reference, disk),
          ]);
        }
        await ok(["detach", "-y", "b"]);
        assert.equal((await ok(["generation", "b"])).stdout.trim(), "detached");
        for (const disk of ["system.qcow2", "home.qcow2"]) {
          // qemu-img compare exits 0 only when what the guest sees is identical.
          await sh("qemu-img", ["compare", "-q", join(reference, disk), join(sandbox.virtdevHome, "projects/b", disk)]);
        }
      } finally {
        await Deno.remove(reference, { recursive: true });
      }
      const gc = await ok(["gc"]);
      assert.equal(gc.stdout, "1\n");
      assert.equal(await exists(kept(1)), false);
    });

    await t.step("a reseal killed mid-swap is finished by the next start; the base checks clean", async () => {
      const crashed = await run(["maintain", "-y", "--no-inventory"], {
        env: { VIRTDEV_TEST_CRASH_AT: "reseal.old-moved" },
      });
      assert.equal(crashed.code, 137, crashed.stderr);
      assert.equal(await exists(join(sandbox.virtdevHome, "system")), false, "killed between the renames");
      const start = await run(["start", "a"]);
      assert.match(start.stderr, /interrupted reseal and finished it/);
      assert.equal(start.code, 11, "a is on generation 3, the base now on 4");
      assert.equal(await exists(kept(3)), true, "a's base was kept before the swap");
      assert.equal(await generation(), "4");
      for (const disk of ["system.qcow2", "home.qcow2"]) {
        await sh("qemu-img", ["check", "-q", join(sandbox.virtdevHome, "system", disk)]);
      }
      assert.equal(await exists(join(sandbox.virtdevHome, "system.old")), false);
    });

    const session = async (
      name: string,
      end: (maintain: ReturnType<typeof spawnWatched>) => Promise<unknown>,
      code: number,
      why: RegExp,
    ) => {
      const before = await checksums(sandbox);
      const maintain = spawnWatched(sandbox, ["maintain", "-y", "--no-provision", "--no-inventory"]);
      try {
        await maintain.waitFor(/The maintenance VM is up/, 600_000);
        const ending = end(maintain);
        const result = await Promise.race([
          maintain.done,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name}: no end in 180 s`)), 180_000)),
        ]);
        await ending;
        assert.equal(result.code, code, result.stderr);
        assert.match(result.stderr, why);
      } finally {
        maintain.kill();
        await killVms(sandbox, ["maintenance"]);
      }
      assert.equal(await checksums(sandbox), before, `${name}: the base is byte-identical`);
      assert.equal(await generation(), "4");
      assert.equal(await exists(join(sandbox.virtdevHome, "maintenance")), false, `${name}: the copy is removed`);
    };

    await t.step(
      "maintain aborted with 'virtdev stop maintenance', even with -y: exit 11, base unchanged",
      async () => {
        await session(
          "stop",
          async () => {
            const stop = await run(["stop", "maintenance"]);
            assert.equal(stop.code, 0, stop.stderr);
          },
          11,
          /aborted: the power-off came from the host/,
        );
      },
    );

    await t.step("Ctrl-C in maintain -y: exit 130, the VM is stopped, base unchanged", async () => {
      await session(
        "Ctrl-C",
        async (maintain) => {
          maintain.kill("SIGINT");
          await maintain.done;
          assert.equal((await run(["status", "maintenance"])).code, 3, "no session left behind");
        },
        130,
        /Maintenance interrupted/,
      );
    });

    await t.step("a guest that panics instead of powering off: exit 19, base unchanged", async () => {
      await session(
        "panic",
        async () => {
          // The connection dies with the kernel; its exit code says nothing.
          // ssh joins its words into one remote command line: the script is one word.
          await run(["ssh", "maintenance", "--", "sudo sh -c 'sleep 1; echo c > /proc/sysrq-trigger'"]);
        },
        19,
        /panicked/,
      );
    });

    await t.step("a maintenance QEMU killed with SIGKILL: exit 18, base unchanged", async () => {
      await session(
        "kill",
        async () => {
          const pid = (await ok(["pid", "maintenance"])).stdout.trim();
          Deno.kill(Number(pid), "SIGKILL");
        },
        18,
        /QEMU exit 137/,
      );
    });
  } finally {
    await killVms(sandbox, ["a", "b", "maintenance"]);
  }
});
