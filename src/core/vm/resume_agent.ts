/**
 * The host agent's share of suspend and resume (see `suspend.ts`):
 *
 * - it guards a suspend: once the guest is paused for one, a suspend that
 *   dies (its lock on `run/suspending` comes free) is finished if its state
 *   was committed (QEMU is ended), and undone otherwise (the guest runs
 *   again and the partial state goes);
 * - it completes a resume: it waits until QEMU has loaded the state,
 *   consumes the state before the guest runs, and lets it run;
 * - it sets a resumed guest's clock from the host's, over the pinned SSH.
 *
 * @module
 */
import { type ProjectPaths, readOptionalText } from "../store/store.ts";
import type { SshTarget } from "../guest/ssh.ts";
import { setGuestClockCommand } from "../guest/guest_clock.ts";
import { openSharedConnection, type SessionTalk, type SharedConnection } from "./shared_connection.ts";
import type { QmpClient } from "./qmp.ts";
import { readSuspendRecord, removePartialSuspend, setAsideSuspendState } from "./suspend_state.ts";
import { appendVmLog } from "./vm_log.ts";

/** What a failed resume's launch error says, so that start knows to boot cold instead. */
export const suspendedStateLoadFailure = "QEMU could not load the suspended state";

/** How often a guarded suspend is looked at. */
const _guardIntervalMs = 200;

/** Whether a suspend has paused the guest (its marker is in run/). */
export async function suspendInProgress(paths: ProjectPaths): Promise<boolean> {
  return await readOptionalText(paths.runtime.suspending) !== undefined;
}

/**
 * Watches a suspend until it ends: the marker goes (the suspend cleared
 * run/), the guest runs again (the suspend gave up), QEMU goes, or the
 * suspend dies, which this then finishes or undoes.
 */
export async function guardSuspend(client: QmpClient, paths: ProjectPaths): Promise<void> {
  for (;;) {
    let marker: Deno.FsFile;
    try {
      marker = await Deno.open(paths.runtime.suspending, { read: true, write: true });
    } catch {
      return;
    }
    try {
      if (await marker.tryLock(true)) {
        await _afterDeadSuspend(client, paths);
        return;
      }
    } finally {
      marker.close();
    }
    const status = await client.execute("query-status").catch(() => undefined) as { status?: string } | undefined;
    if (status === undefined || status.status === "running") return;
    await new Promise((resolve) => setTimeout(resolve, _guardIntervalMs));
  }
}

async function _afterDeadSuspend(client: QmpClient, paths: ProjectPaths): Promise<void> {
  let marker: { token?: unknown; kind?: unknown } = {};
  try {
    marker = JSON.parse(await readOptionalText(paths.runtime.suspending) ?? "{}") ?? {};
  } catch {
    // Unreadable: undone below, the safe way.
  }
  // A warm image's save lets the VM run on however far it got; a suspend that committed is finished.
  const kind = marker.kind === "template" ? "template" : "suspended";
  const committed = kind === "suspended" ? await readSuspendRecord(paths) : undefined;
  if (committed !== undefined && committed.token === marker.token) {
    await appendVmLog(paths, "host agent: the suspend died after saving the state; ending QEMU as it would have");
    await client.execute("quit").catch(() => {});
    return;
  }
  await client.execute("migrate_cancel").catch(() => {});
  for (let i = 0; i < 100; i++) {
    const info = await client.execute("query-migrate").catch(() => undefined) as { status?: string } | undefined;
    if (info?.status !== "active" && info?.status !== "setup" && info?.status !== "cancelling") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await removePartialSuspend(paths, { kind });
  await Deno.remove(paths.runtime.suspending).catch(() => {});
  await client.execute("cont").catch(() => {});
  await appendVmLog(
    paths,
    kind === "template"
      ? "host agent: saving a warm image died; the guest runs on"
      : "host agent: a suspend died before its state was saved; the guest runs again",
  );
}

/**
 * Waits until QEMU has loaded the suspended state (it waits paused, `-S`),
 * consumes the state and lets the guest run.
 *
 * @returns false when QEMU ended or did not load it in time.
 */
export async function finishIncoming(
  client: QmpClient,
  paths: ProjectPaths,
  options: { readonly timeoutMs: number; readonly keep?: boolean },
): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = 5;
  for (;;) {
    const status = await client.execute("query-status").catch(() => undefined) as { status?: string } | undefined;
    if (status === undefined) return false;
    if (status.status === "paused" || status.status === "prelaunch") break;
    if (status.status !== "inmigrate") {
      await appendVmLog(paths, `host agent: QEMU's run state was ${status.status} while loading the saved state`);
      return false;
    }
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    // Each look is one QMP round trip on a local socket; a resume waits for nothing else.
    delay = Math.min(delay * 2, 10);
  }
  // Gone before the guest can write a byte: a state is never resumed twice. A warm image is kept: each
  // disposable run writes only to its own copies of the overlays.
  const consumed = options.keep ? undefined : await setAsideSuspendState(paths);
  await client.execute("cont");
  // The new passt learns the guest's MAC from its first frame; until then it sends the guest a login's SYN
  // to the broadcast address, which the guest's TCP drops (such a login hung for about 10 s). QEMU's own
  // announcement after a load comes 50 ms on, a race with the clock's login: one now, before anyone connects.
  await client.execute("announce-self", { initial: 0, max: 0, rounds: 1, step: 0 }).catch(() => {});
  // The files go while the guest runs: the unlink of a state is host work no login needs to wait for.
  consumed?.remove().catch((error) =>
    appendVmLog(paths, `host agent: removing the used state: ${error instanceof Error ? error.message : error}`)
  );
  return true;
}

/** The outcome of setting a resumed guest's clock. */
export interface ClockOutcome {
  readonly set: boolean;
  /** Who set it: the helper the suspend armed (the fast path), or sudo in the login itself. */
  readonly by?: "helper" | "sudo";
  readonly detail?: string;
}

/**
 * Sets the guest's clock from the host's: it stood still while the VM was
 * suspended. Over the pinned SSH, with the passwordless sudo of the guest
 * contract. The guest asks for the time once the session is up, so the
 * time it gets is late by the one-way trip of a line, not by SSH's
 * handshake (about a second under TCG). A `target` with a control path
 * keeps the connection as the boot's master (`shared_connection.ts`).
 */
export async function setGuestClock(
  target: SshTarget,
): Promise<{ readonly outcome: ClockOutcome; readonly connection?: SharedConnection }> {
  const login = await openSharedConnection(target, { command: setGuestClockCommand, talk: _clockTalk });
  return "connection" in login
    ? { outcome: { set: true, by: login.said }, connection: login.connection }
    : { outcome: { set: false, detail: login.detail } };
}

/** How often one login may ask for the time: its fast path, then sudo (`guest_clock.ts`). */
const _maxTimeRequests = 2;

/**
 * Each `ready` gets the time of that moment: the guest asks again where its
 * fast path failed (`guest_clock.ts`).
 *
 * @returns who set the clock, or undefined when it was not set.
 */
async function _clockTalk(session: SessionTalk): Promise<ClockOutcome["by"]> {
  let said = await session.waitFor("ready");
  for (let asked = 0; said === "ready" && asked < _maxTimeRequests; asked++) {
    await session.send((Date.now() / 1000).toFixed(3));
    said = await session.waitFor("set", "set-by-sudo", "ready");
  }
  return said === "set" ? "helper" : said === "set-by-sudo" ? "sudo" : undefined;
}
