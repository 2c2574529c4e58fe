/**
 * The host agent's forwards: one `ssh -N -L 127.0.0.1:HOST:127.0.0.1:GUEST`
 * per forward, over the project's pinned SSH, kept running while the VM
 * runs (restarted after a guest reboot or a dropped connection) and ended
 * with it. The guest's sshd allows local forwards only, so nothing can be
 * forwarded the other way.
 *
 * @module
 */
import { spawnTool } from "../store/process.ts";
import { sshArguments, type SshTarget } from "../guest/ssh.ts";
import type { Forward, ForwardState } from "./forwards.ts";

/** How long a new forward may take to answer. */
const _upTimeoutMs = 20_000;
/** The longest pause between restarts of a forward whose connection dropped. */
const _maxBackoffMs = 10_000;

interface _Running {
  readonly forward: Forward;
  child: Deno.ChildProcess | undefined;
  state: ForwardState;
  stopped: boolean;
  backoff: number;
}

/** Keeps a set of forwards running. */
export class ForwardKeeper {
  readonly #target: SshTarget;
  readonly #onChange: (states: readonly ForwardState[]) => void;
  readonly #running = new Map<string, _Running>();

  constructor(target: SshTarget, onChange: (states: readonly ForwardState[]) => void) {
    this.#target = target;
    this.#onChange = onChange;
  }

  /** The forwards' states, in host-port order. */
  get states(): ForwardState[] {
    return [...this.#running.values()].map((running) => running.state).sort((a, b) => a.host - b.host);
  }

  /** Starts what `desired` adds, stops what it no longer holds. */
  reconcile(desired: readonly Forward[]): void {
    const wanted = new Map(desired.map((forward) => [_key(forward), forward]));
    for (const [key, running] of this.#running) {
      if (!wanted.has(key)) {
        running.stopped = true;
        _kill(running.child);
        this.#running.delete(key);
      }
    }
    for (const [key, forward] of wanted) {
      const running = this.#running.get(key);
      // A failed one is tried again: its port may be free by now.
      if (running && running.state.state !== "failed") continue;
      const fresh: _Running = {
        forward,
        child: undefined,
        state: { ...forward, state: "starting" },
        stopped: false,
        backoff: 1000,
      };
      this.#running.set(key, fresh);
      this.#run(fresh);
    }
    this.#onChange(this.states);
  }

  /** Ends every forward. */
  async stopAll(): Promise<void> {
    const children = [...this.#running.values()].map((running) => {
      running.stopped = true;
      _kill(running.child);
      return running.child?.status;
    });
    this.#running.clear();
    await Promise.all(children);
  }

  async #run(running: _Running): Promise<void> {
    const { host, guest } = running.forward;
    while (!running.stopped) {
      if (!_isFree(host)) {
        this.#set(running, { state: "failed", error: `127.0.0.1:${host} is in use by another program` });
        return;
      }
      const args = sshArguments(this.#target, [], { batch: true });
      // Options go before the destination, the last word.
      const child = spawnTool("ssh", [
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-L",
        `127.0.0.1:${host}:127.0.0.1:${guest}`,
        ...args,
      ]);
      running.child = child;
      child.stdout.cancel().catch(() => {});
      const stderr = new Response(child.stderr).text();
      let exited = false;
      child.status.then(() => exited = true);
      const started = Date.now();
      while (!exited && !running.stopped && running.state.state !== "up") {
        if (await _answers(host)) {
          running.backoff = 1000;
          this.#set(running, { state: "up" });
          break;
        }
        if (Date.now() - started > _upTimeoutMs) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const status = await child.status;
      if (running.stopped) return;
      const said = (await stderr).trim().split("\n").filter((line) => line.trim()).slice(-2).join("; ");
      if (/Address already in use|cannot listen to port/i.test(said)) {
        this.#set(running, { state: "failed", error: said });
        return;
      }
      this.#set(running, { state: "retrying", error: said || `ssh exited (${status.code})` });
      await new Promise((resolve) => setTimeout(resolve, running.backoff));
      running.backoff = Math.min(running.backoff * 2, _maxBackoffMs);
    }
  }

  #set(running: _Running, state: Omit<ForwardState, "host" | "guest">): void {
    running.state = { ...running.forward, ...state };
    this.#onChange(this.states);
  }
}

function _key(forward: Forward): string {
  return `${forward.host}:${forward.guest}`;
}

function _kill(child: Deno.ChildProcess | undefined): void {
  try {
    child?.kill("SIGTERM");
  } catch {
    // Already gone.
  }
}

/** Whether nothing listens on 127.0.0.1:`port` (the only address a forward binds). */
function _isFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

/** Whether 127.0.0.1:`port` accepts a connection. */
async function _answers(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port, transport: "tcp" })).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    throw error;
  }
}
