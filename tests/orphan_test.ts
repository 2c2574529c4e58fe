/**
 * A host agent that dies (kill -9) with a firmware-only VM: its passt and
 * egress filter die with it (the parent-death signal), `status` says the
 * agent is gone, `stop` still works and ends a helper left without its
 * agent, and `doctor` names such a helper of a VM that is gone and `--fix`
 * ends it. The helpers are real passt processes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { killVms, type Sandbox, sealedSandbox, virtdev } from "./_helpers.ts";

async function agentState(
  sandbox: Sandbox,
  name: string,
): Promise<{ pid: number; passtPid?: number; filterPid?: number }> {
  return JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects", name, "run/agent.json")));
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, test: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await test()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A real passt serving a socket in project `name`'s run/net, whose parent is this test (not a host agent). */
function strayPasst(sandbox: Sandbox, name: string, socket: string): Deno.ChildProcess {
  const dir = join(sandbox.virtdevHome, "projects", name, "run/net");
  Deno.mkdirSync(dir, { recursive: true });
  return new Deno.Command("passt", {
    // As virtdev runs it when root (in CI): passt would otherwise drop to nobody, who cannot reach run/.
    args: ["--foreground", "--socket", join(dir, socket), ...(Deno.uid() === 0 ? ["--runas", "0:0"] : [])],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test("a killed host agent: helpers die with it, status tells, stop and doctor --fix end strays", async () => {
  await using sandbox = await sealedSandbox("p", "q");
  const strays: Deno.ChildProcess[] = [];
  try {
    const started = await virtdev(sandbox, ["start", "--net", "wan", "p"]);
    assert.equal(started.code, 0, started.stderr);
    const agent = await agentState(sandbox, "p");
    assert.ok(agent.passtPid && agent.filterPid, "passt and the filter run");
    Deno.kill(agent.pid, "SIGKILL");
    await until("passt and the filter end with their agent", () => !alive(agent.passtPid!) && !alive(agent.filterPid!));

    const status = await virtdev(sandbox, ["status", "p"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^\w+ \(no host agent: console not logged/);
    assert.equal(JSON.parse((await virtdev(sandbox, ["status", "--json", "p"])).stdout).hostAgent, false);

    // A helper without its agent (as where setpriv is missing): stop ends it with the VM.
    const stray = strayPasst(sandbox, "p", "stray.sock");
    strays.push(stray);
    await until("the stray passt runs", () => alive(stray.pid));
    const stop = await virtdev(sandbox, ["stop", "p"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, new RegExp(`ended passt \\(PID ${stray.pid}\\)`));
    await stray.status;

    // Of a VM that is gone: doctor names it and fails; --fix ends it.
    const other = strayPasst(sandbox, "q", "stray.sock");
    strays.push(other);
    await until("the second stray runs", () => alive(other.pid));
    const doctor = await virtdev(sandbox, ["doctor", "--json"]);
    const found = JSON.parse(doctor.stdout).find((check: { id: string }) => check.id === "orphan:q");
    assert.equal(found?.status, "fail", doctor.stdout);
    assert.match(found.summary, new RegExp(`passt \\(PID ${other.pid}\\)`));
    const fix = await virtdev(sandbox, ["doctor", "--fix", "--json"]);
    assert.equal(JSON.parse(fix.stdout).find((check: { id: string }) => check.id === "orphan:q")?.fixed, true);
    await other.status;
    assert.equal(alive(other.pid), false);
  } finally {
    for (const stray of strays) {
      try {
        stray.kill("SIGKILL");
      } catch {
        // Ended by the test.
      }
    }
    await killVms(sandbox, ["p"]);
  }
});
