import assert from "node:assert/strict";
import { join } from "node:path";
import { QmpClient, QmpCommandError } from "../src/core/vm/qmp.ts";

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await Deno.lstat(path)).isSocket) return;
    } catch {
      // Not yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no socket at ${path}`);
}

Deno.test("QMP against a real QEMU: negotiate, query, error classes, and quit", async () => {
  const dir = await Deno.makeTempDir();
  const socket = join(dir, "qmp,odd.sock");
  const qemu = new Deno.Command("qemu-system-x86_64", {
    args: [
      "-machine",
      "none",
      "-display",
      "none",
      "-nodefaults",
      "-qmp",
      `unix:${socket.replaceAll(",", ",,")},server=on,wait=off`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    await waitForSocket(socket);
    await using qmp = await QmpClient.connect(socket);
    const status = await qmp.execute("query-status") as { running: boolean; status: string };
    assert.equal(typeof status.running, "boolean");
    assert.match(status.status, /^(running|prelaunch|paused)$/);
    await assert.rejects(() => qmp.execute("no-such-command"), (error: unknown) => {
      assert.ok(error instanceof QmpCommandError);
      assert.equal(error.errorClass, "CommandNotFound");
      return true;
    });
    await qmp.execute("quit");
    assert.equal(await qmp.waitForEvent("NEVER_SENT"), undefined);
    const exit = await qemu.status;
    assert.equal(exit.code, 0);
  } finally {
    try {
      qemu.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await qemu.stderr.cancel().catch(() => {});
    await qemu.status;
    await Deno.remove(dir, { recursive: true });
  }
});
