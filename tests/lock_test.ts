import assert from "node:assert/strict";
import { acquireLock, lockBusyError } from "../src/core/store/lock.ts";
import { LockBusyError } from "../src/core/store/errors.ts";
import { Store } from "../src/core/store/store.ts";

Deno.test("the lock is exclusive, names its holder, and can be taken again once released", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new Store(`${root}/home`);
    const lock = await acquireLock(store, "create demo");
    const record = await Deno.readTextFile(store.lockFile);
    assert.match(record, new RegExp(`^${Deno.pid} create demo\\s*\\n$`));
    await assert.rejects(() => acquireLock(store, "destroy demo"), (error: unknown) => {
      assert.ok(error instanceof LockBusyError);
      assert.equal(error.exitCode, 75);
      assert.equal(error.holderPid, Deno.pid);
      assert.match(error.message, /'virtdev create demo'/);
      assert.match(error.message, new RegExp(`PID ${Deno.pid}`));
      return true;
    });
    lock.release();
    const again = await acquireLock(store, "list");
    again.release();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("lock messages distinguish maintenance and unknown holders", () => {
  const store = new Store("/v");
  const maintenance = lockBusyError(store, { pid: 42, command: "maintain" });
  assert.equal(maintenance.message, "Base system maintenance is in progress (virtdev maintain, PID 42).");
  assert.match(maintenance.hints.join("\n"), /virtdev stop maintenance/);
  const other = lockBusyError(store, { pid: 7, command: "start web" });
  assert.equal(other.message, "Another virtdev operation is in progress: 'virtdev start web' (PID 7).");
  assert.match(other.hints[0], /\/v\/lock/);
  const unknown = lockBusyError(store, { pid: undefined, command: undefined });
  assert.equal(unknown.message, "Another virtdev operation is in progress: another virtdev command (PID unknown).");
});
