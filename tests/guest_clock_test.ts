/**
 * The clock hand-off's guest scripts, run here by bash and sh as the guest
 * would run them, with stand-ins for what needs a guest's root: `sudo`
 * runs its command as it is (with SUDO_UID), and `date -s` writes the time
 * it was given to a file instead of setting a clock (taking 4 s where the
 * test asks it to be slow). The scripts' FIFO directory is moved into a
 * temporary one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { armGuestClockCommand, guestClockDir, setGuestClockCommand } from "../src/core/guest/guest_clock.ts";

async function _world(): Promise<{ dir: string; env: Record<string, string>; script: (text: string) => string }> {
  const dir = await Deno.makeTempDir();
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(join(bin, "sudo"), `#!/bin/sh\n[ "$1" = -n ] && shift\nSUDO_UID=$(id -u) exec "$@"\n`);
  await Deno.writeTextFile(
    join(bin, "date"),
    `#!/bin/sh\n[ "$2" = -s ] || exit 2\n[ -e ${dir}/slow ] && sleep 4\nprintf '%s\\n' "$3" >> ${dir}/set-times\n`,
  );
  for (const name of ["sudo", "date"]) await Deno.chmod(join(bin, name), 0o755);
  const clockDir = join(dir, "clock");
  return {
    dir,
    env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
    script: (text) => text.replaceAll(guestClockDir, clockDir),
  };
}

/** Runs the resume's login script under bash, answering each `ready` with `time`; what it said, and its exit code. */
async function _login(
  world: Awaited<ReturnType<typeof _world>>,
  times: readonly string[],
): Promise<{ said: string[]; code: number }> {
  const child = new Deno.Command("bash", {
    args: ["-c", world.script(setGuestClockCommand)],
    env: world.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const said: string[] = [];
  const queue = [...times];
  let buffer = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      said.push(line);
      if (line === "ready") await writer.write(new TextEncoder().encode(`${queue.shift() ?? ""}\n`));
      // The session is held until its input ends: end it.
      if (line === "set" || line === "set-by-sudo") await writer.close();
    }
  }
  await writer.close().catch(() => {});
  return { said, code: (await child.status).code };
}

async function _arm(world: Awaited<ReturnType<typeof _world>>): Promise<number> {
  const output = await new Deno.Command("bash", { args: ["-c", world.script(armGuestClockCommand)], env: world.env })
    .output();
  return output.code;
}

async function _setTimes(world: Awaited<ReturnType<typeof _world>>): Promise<string[]> {
  return (await Deno.readTextFile(join(world.dir, "set-times")).catch(() => "")).split("\n").filter(Boolean);
}

async function _helperPid(world: Awaited<ReturnType<typeof _world>>): Promise<number> {
  return Number(await Deno.readTextFile(join(world.dir, "clock", "pid")));
}

Deno.test("armed, a login hands the time to the helper with one ready; twice over; re-arming keeps the helper", async () => {
  const world = await _world();
  try {
    assert.equal(await _arm(world), 0);
    const helper = await _helperPid(world);
    assert.deepEqual(await _login(world, ["1700000000.125"]), { said: ["ready", "set"], code: 0 });
    assert.deepEqual(await _login(world, ["1700000100.5"]), { said: ["ready", "set"], code: 0 });
    assert.deepEqual(await _setTimes(world), ["@1700000000.125", "@1700000100.5"]);
    // A second suspend of the same boot finds it alive and leaves it.
    assert.equal(await _arm(world), 0);
    assert.equal(await _helperPid(world), helper);
    Deno.kill(helper, "SIGKILL");
  } finally {
    await Deno.remove(world.dir, { recursive: true });
  }
});

Deno.test("unarmed, or with a dead helper, the login takes the sudo path; a refused time asks again", async () => {
  const world = await _world();
  try {
    assert.deepEqual(await _login(world, ["1700000000.25"]), { said: ["ready", "set-by-sudo"], code: 0 });
    assert.equal(await _arm(world), 0);
    // The helper refuses what is not a time; the login then asks again and sets it through sudo.
    assert.deepEqual(await _login(world, ["1700000001; reboot", "1700000002"]), {
      said: ["ready", "ready", "set-by-sudo"],
      code: 0,
    });
    // A helper that died: its PID names no process (a guest's init reaps it; here it would linger as a zombie).
    const helper = await _helperPid(world);
    Deno.kill(helper, "SIGKILL");
    await Deno.writeTextFile(join(world.dir, "clock", "pid"), "4194305\n");
    assert.deepEqual(await _login(world, ["1700000003"]), { said: ["ready", "set-by-sudo"], code: 0 });
    assert.deepEqual(await _setTimes(world), ["@1700000000.25", "@1700000002", "@1700000003"]);
    // Re-armed after its death: a new helper answers.
    assert.equal(await _arm(world), 0);
    assert.notEqual(await _helperPid(world), helper);
    assert.deepEqual(await _login(world, ["1700000004"]), { said: ["ready", "set"], code: 0 });
    Deno.kill(await _helperPid(world), "SIGKILL");
  } finally {
    await Deno.remove(world.dir, { recursive: true });
  }
});

Deno.test("the helper's answer is waited for past the jump the clock makes: 3 s of the guest's old clock", async () => {
  const world = await _world();
  try {
    assert.equal(await _arm(world), 0);
    await Deno.writeTextFile(join(world.dir, "slow"), "");
    // The host's time 100 s ahead: the guest's clock jumps that far when it is set, and bash's read -t counts by
    // that clock. A helper slower than 3 s still counts (a plain 3 s wait expired at the jump, and every resume
    // fell back to sudo).
    const ahead = (Date.now() / 1000 + 100).toFixed(3);
    assert.deepEqual(await _login(world, [ahead]), { said: ["ready", "set"], code: 0 });
    // Without a jump the wait is still 3 s: a helper that does not answer sends the login to sudo.
    const now = (Date.now() / 1000).toFixed(3);
    assert.deepEqual(await _login(world, [now, now]), { said: ["ready", "ready", "set-by-sudo"], code: 0 });
    // Its late answer met a closed FIFO (SIGPIPE), so the next suspend arms a new one; kill it if it lingers.
    try {
      Deno.kill(await _helperPid(world), "SIGKILL");
    } catch {
      // Gone.
    }
  } finally {
    await Deno.remove(world.dir, { recursive: true });
  }
});
