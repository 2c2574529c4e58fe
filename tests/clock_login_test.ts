/**
 * The host's side of a resume's clock login against a hostile guest: a
 * stand-in `ssh` on PATH plays the guest (root in itself), and says what it
 * likes. Only the exact words `set` and `set-by-sudo`, after a time was
 * asked for with `ready`, count; what the guest says is never shown raw.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { setGuestClock } from "../src/core/vm/resume_agent.ts";

/** Runs setGuestClock against a stand-in ssh whose remote side is `guest` (a sh script). */
async function _loginAgainst(guest: string): Promise<Awaited<ReturnType<typeof setGuestClock>>["outcome"]> {
  const dir = await Deno.makeTempDir();
  const path = Deno.env.get("PATH") ?? "";
  try {
    await Deno.writeTextFile(join(dir, "ssh"), `#!/bin/sh\n${guest}\n`, { mode: 0o755 });
    Deno.env.set("PATH", `${dir}:${path}`);
    const { outcome, connection } = await setGuestClock({
      project: "p",
      port: 1,
      identity: join(dir, "id"),
      knownHosts: join(dir, "known_hosts"),
    });
    await connection?.end();
    return outcome;
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a guest's near-words are not taken for the clock being set, and its words are not shown raw", async () => {
  const outcome = await _loginAgainst(String.raw`echo ready; read t
printf 'set-by-sudo-x\nSET\n\033[31mset\033[0m\nset; reboot\nsetset\nhelper\n'
printf '\033]0;owned\007 last words\n' >&2
exit 0`);
  assert.equal(outcome.set, false);
  assert.equal(outcome.by, undefined);
  assert.match(outcome.detail ?? "", /last words$/);
  assert.ok(!outcome.detail?.includes("\x1b") && !outcome.detail?.includes("\x07"), "no control sequences");
});

Deno.test("a word unasked for does not count: set before any time was sent", async () => {
  const outcome = await _loginAgainst(`echo set; echo set-by-sudo; exit 0`);
  assert.equal(outcome.set, false);
});

Deno.test("the exact words say who set the clock, and the session is then held", async () => {
  assert.deepEqual(await _loginAgainst(`echo ready; read t; echo set; exec cat > /dev/null`), {
    set: true,
    by: "helper",
  });
  assert.deepEqual(
    await _loginAgainst(`echo ready; read t; echo ready; read t; echo set-by-sudo; exec cat > /dev/null`),
    { set: true, by: "sudo" },
  );
});
