/**
 * The host agent's SSH connection to its guest, held open for the boot: with
 * a control socket it is the master that later logins of `wait`, `suspend`,
 * `run`, `ssh` and rsync share, so that they skip SSH's handshake (about
 * 0.7 s of a guest under TCG).
 *
 * It is opened once a boot: after a resume by the login that sets the
 * guest's clock (`resume_agent.ts`), after a cold boot by a plain login at
 * the guest's ready line. Its session says a word once it is up and is then
 * held (its input ends it).
 *
 * The guest is hostile: what it writes before its word is read within a
 * fixed size and never shown raw, and a session that does not say it in
 * time is killed.
 *
 * @module
 */
import { exitCodeOf, spawnTool } from "../store/process.ts";
import { isHostKeyFailure, isKeyRefused, sshArguments, type SshTarget, usableControlPath } from "../guest/ssh.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";

/** A held login (see the module's documentation). */
export interface SharedConnection {
  /**
   * Ends it: its session's input closes, and ssh is ended if it lingers.
   * With `guestGone` (QEMU has exited) at once: nobody is left to answer.
   */
  end(options?: { readonly guestGone?: boolean }): Promise<void>;
}

/** What a held session says, line by line, and how it is answered. */
export interface SessionTalk {
  /** Waits for a line that is one of `words`: that word, or undefined at the stream's end. */
  waitFor(...words: readonly string[]): Promise<string | undefined>;
  /** Sends the guest a line. */
  send(line: string): Promise<void>;
}

/** The outcome of one held login that did not come up. */
export interface SessionFailure {
  readonly code: number;
  readonly stderr: string;
}

/** The most the guest may say before its word (its motd, a shell's noise) and of errors, in bytes. */
const _maxGuestBytes = 4096;
/** How long a login may take to come up before it is given up. */
const _sessionTimeoutMs = 15_000;
/** How long an ended connection's ssh may take to go before it is killed. */
const _connectionEndGraceMs = 2_000;
/** How long a login is tried again while ssh itself fails (sshd not answering yet, the network coming back). */
const _loginRetryMs = 20_000;

/**
 * What a held login runs, and how it is talked with: `talk` gives what the
 * guest's words came to once the session is up (then it is held), or
 * undefined where they did not (then it is ended).
 */
export interface SessionScript<T> {
  readonly command: string;
  readonly talk: (session: SessionTalk) => Promise<T | undefined>;
}

/** One login that runs `script`; held when its talk comes to something. */
async function _holdSession<T>(
  target: SshTarget,
  script: SessionScript<T>,
): Promise<SessionFailure | { readonly connection: SharedConnection; readonly said: T }> {
  const child = spawnTool("ssh", sshArguments(target, [script.command], { batch: true, controlMaster: true }), {
    stdin: true,
  });
  const kill = (): void => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone.
    }
  };
  const timer = setTimeout(kill, _sessionTimeoutMs);
  const stderr = _boundedText(child.stderr);
  const writer = child.stdin.getWriter();
  const lines = new _GuestLines(child.stdout);
  try {
    const said = await script.talk({
      waitFor: (...words) => lines.waitFor(...words),
      send: (line) => writer.write(new TextEncoder().encode(`${line}\n`)),
    });
    if (said !== undefined) {
      // Read on in the background, so that ssh never blocks on a full pipe.
      lines.drain();
      const connection = _keptConnection(child, writer);
      // Without a control socket ssh could use, nothing could share it.
      if (target.controlPath === undefined || usableControlPath(target.controlPath) === undefined) {
        await connection.end();
      }
      return { connection, said };
    }
    await writer.close().catch(() => {});
    const status = await child.status;
    return { code: exitCodeOf(status), stderr: await stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** A cold boot's held login: a word, then the session waits for its input to end. */
export const plainLogin: SessionScript<"ready"> = {
  command: "echo ready; exec cat > /dev/null",
  talk: async (session) => (await session.waitFor("ready")) === "ready" ? "ready" : undefined,
};

/**
 * Opens the boot's held login: the resume's clock (`resume_agent.ts`), or
 * the {@link plainLogin} that a cold boot makes at the guest's ready line as
 * the proof that SSH takes the pinned key. Tried again while ssh itself
 * fails; a refused key, a host key other than the pinned one, or a failure
 * of the remote command (a refusal by sudo) is final.
 *
 * @returns the connection and what its talk came to, or the last line ssh
 * or the guest said (safe to print).
 */
export async function openSharedConnection<T>(
  target: SshTarget,
  script: SessionScript<T>,
): Promise<{ readonly connection: SharedConnection; readonly said: T } | { readonly detail: string }> {
  let last = "";
  const deadline = Date.now() + _loginRetryMs;
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    const result = await _holdSession(target, script).catch((error) => ({ code: 255, stderr: String(error) }));
    if ("connection" in result) return result;
    last = _lastLineOf(result.stderr);
    if (result.code !== 255 || isHostKeyFailure(result.stderr) || isKeyRefused(result.stderr)) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(200 * attempt, 1000)));
  }
  return { detail: last || "ssh failed" };
}

/** The guest's words, shown to people: no control sequences, one short line. */
function _lastLineOf(stderr: string): string {
  return stripTerminalControls(stderr).trim().split("\n").at(-1)?.slice(0, 200) ?? "";
}

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
