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
import { exitCodeOf, spawnTool } from "../store/process.ts";
import { sshArguments, type SshTarget, usableControlPath } from "../guest/ssh.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";
import { setGuestClockCommand } from "../guest/guest_clock.ts";
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
  readonly detail?: string;
}

/**
 * The SSH connection that set the clock, kept open: with a control socket
 * it is the master that later logins of `run`, `ssh` and rsync share, so
 * that they skip SSH's handshake (about 0.7 s of a guest under TCG).
 */
export interface SharedConnection {
  /**
   * Ends it: its session's input closes, and ssh is ended if it lingers.
   * With `guestGone` (QEMU has exited) at once: nobody is left to answer.
   */
  end(options?: { readonly guestGone?: boolean }): Promise<void>;
}

/**
 * Sets the guest's clock from the host's: it stood still while the VM was
 * suspended. Over the pinned SSH, with the passwordless sudo of the guest
 * contract. The guest asks for the time once the session is up, so the
 * time it gets is late by the one-way trip of a line, not by SSH's
 * handshake (about a second under TCG). A `target` with a control path
 * keeps the connection as a master (see {@link SharedConnection}).
 */
export async function setGuestClock(
  target: SshTarget,
): Promise<{ readonly outcome: ClockOutcome; readonly connection?: SharedConnection }> {
  let last = "";
  const deadline = Date.now() + 20_000;
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    const result = await _clockSession(target).catch((error) => ({ code: 255, stderr: String(error) }));
    if ("connection" in result) return { outcome: { set: true }, connection: result.connection };
    // The guest's words, shown to people: no control sequences, one short line.
    last = stripTerminalControls(result.stderr).trim().split("\n").at(-1)?.slice(0, 200) ?? "";
    // ssh's own failures (the network coming back) are retried; a refusal by sudo is final.
    if (result.code !== 255) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(200 * attempt, 1000)));
  }
  return { outcome: { set: false, detail: last || "ssh failed" } };
}

/** How often one login may ask for the time: its fast path, then sudo (`guest_clock.ts`). */
const _maxTimeRequests = 2;
/** The most the guest may say before its `ready` (its motd, a shell's noise) and of errors, in bytes. */
const _maxGuestBytes = 4096;
/** How long a login may take to set the clock before it is given up. */
const _clockSessionTimeoutMs = 15_000;

async function _clockSession(
  target: SshTarget,
): Promise<{ code: number; stderr: string } | { connection: SharedConnection }> {
  const child = spawnTool("ssh", sshArguments(target, [setGuestClockCommand], { batch: true, controlMaster: true }), {
    stdin: true,
  });
  const kill = (): void => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone.
    }
  };
  const timer = setTimeout(kill, _clockSessionTimeoutMs);
  const stderr = _boundedText(child.stderr);
  const writer = child.stdin.getWriter();
  const lines = new _GuestLines(child.stdout);
  try {
    // Each `ready` gets the time of that moment: the guest asks again where its fast path failed (guest_clock.ts).
    let said = await lines.waitFor("ready");
    for (let asked = 0; said === "ready" && asked < _maxTimeRequests; asked++) {
      await writer.write(new TextEncoder().encode(`${(Date.now() / 1000).toFixed(3)}\n`));
      said = await lines.waitFor("set", "ready");
    }
    if (said === "set") {
      // Read on in the background, so that ssh never blocks on a full pipe.
      lines.drain();
      const connection = _keptConnection(child, writer);
      // Without a control socket ssh could use, nothing could share it.
      if (target.controlPath === undefined || usableControlPath(target.controlPath) === undefined) {
        await connection.end();
      }
      return { connection };
    }
    await writer.close().catch(() => {});
    const status = await child.status;
    return { code: exitCodeOf(status), stderr: await stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** How long an ended connection's ssh may take to go before it is killed. */
const _connectionEndGraceMs = 2_000;

function _keptConnection(
  child: Deno.ChildProcess,
  writer: WritableStreamDefaultWriter<Uint8Array>,
): SharedConnection {
  return {
    async end(options = {}) {
      await writer.close().catch(() => {});
      const timer = setTimeout(() => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Gone.
        }
      }, options.guestGone ? 0 : _connectionEndGraceMs);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** The lines a guest writes, scanned for a word; at most the last `_maxGuestBytes` are held. */
class _GuestLines {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #pending = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Reads until a line that is one of `words` (that word) or the stream's end (undefined); what follows is kept. */
  async waitFor(...words: readonly string[]): Promise<string | undefined> {
    for (;;) {
      const lines = this.#pending.split("\n");
      const index = lines.slice(0, -1).findIndex((line) => words.includes(line.trim()));
      if (index >= 0) {
        this.#pending = lines.slice(index + 1).join("\n");
        return lines[index].trim();
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#pending = (this.#pending + this.#decoder.decode(value, { stream: true })).slice(-_maxGuestBytes);
    }
  }

  /**
   * Reads the rest unread, in the background. Nothing comes: the held
   * session's `cat` writes to /dev/null, and sshd closes the stream at its
   * end of file; what a guest can still write reaches only stderr's tail.
   */
  drain(): void {
    (async () => {
      try {
        while (!(await this.#reader.read()).done) { /* drained */ }
      } catch {
        // Closed.
      }
    })();
  }
}

/** The last `_maxGuestBytes` of a stream, as text. */
async function _boundedText(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of stream) text = (text + decoder.decode(chunk, { stream: true })).slice(-_maxGuestBytes);
  } catch {
    // Closed.
  }
  return text;
}
