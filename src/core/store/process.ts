/**
 * The one wrapper virtdev uses to run another program. Arguments are always
 * an argv array: no shell ever sees a string built from input.
 *
 * @module
 */
import { ExitCode, ToolError } from "./errors.ts";

/** Options for {@link runTool}. */
export interface RunToolOptions {
  /** Extra environment variables for the child. */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory of the child. */
  readonly cwd?: string;
  /** Data written to the child's stdin; stdin is closed otherwise. */
  readonly stdin?: string | Uint8Array;
  /** When true, a non-zero exit is returned instead of thrown. */
  readonly allowFailure?: boolean;
  /** Hint shown when the program is not installed. */
  readonly missingHint?: string;
  /** Called with each piece of output as it arrives (it is still captured). */
  readonly onOutput?: (text: string, stream: "stdout" | "stderr") => void;
  /**
   * The most characters of each stream kept in the result (the last ones);
   * for output a guest controls, so that it cannot fill the host's memory.
   */
  readonly maxCapture?: number;
  /**
   * Ends the child with SIGKILL after this many milliseconds; the result
   * then has `timedOut` set (and is not an error, whatever `allowFailure`).
   */
  readonly timeoutMs?: number;
}

/** What a finished program left behind. */
export interface ToolResult {
  /** The exit code (128 + signal number when killed by a signal). */
  readonly code: number;
  /** Standard output, decoded as UTF-8. */
  readonly stdout: string;
  /** Standard error, decoded as UTF-8. */
  readonly stderr: string;
  /** Set when `timeoutMs` ran out and the child was killed. */
  readonly timedOut?: boolean;
}

const _signalNumbers: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGTERM: 15,
};

/** Maps a child's status to one shell-style exit code. */
export function exitCodeOf(status: Deno.CommandStatus): number {
  if (status.signal !== null) return 128 + (_signalNumbers[status.signal] ?? 0);
  return status.code;
}

/**
 * Runs `program` with `args`, captures its output and returns it.
 *
 * @throws {ToolError} exit 69 when the program is not installed, exit 70
 *   when it exits non-zero (unless `allowFailure`).
 */
export async function runTool(
  program: string,
  args: readonly string[],
  options: RunToolOptions = {},
): Promise<ToolResult> {
  const command = new Deno.Command(program, {
    args: [...args],
    env: options.env ? { ...options.env } : undefined,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (error) {
    throw _spawnError(program, error, options.missingHint);
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    const data = typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin;
    await writer.write(data).catch(() => {});
    await writer.close().catch(() => {});
  }
  let timedOut = false;
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // It has just exited.
    }
  }, options.timeoutMs);
  const [stdout, stderr, status] = await Promise.all([
    _collect(child.stdout, (text) => options.onOutput?.(text, "stdout"), options.maxCapture),
    _collect(child.stderr, (text) => options.onOutput?.(text, "stderr"), options.maxCapture),
    child.status,
  ]).finally(() => {
    // Not even a look at the global without a timer: Deno loads its timers
    // (node:timers, about 10 ms) the first time either global is touched.
    if (timer !== undefined) clearTimeout(timer);
  });
  const result: ToolResult = { code: exitCodeOf(status), stdout, stderr, ...(timedOut ? { timedOut } : {}) };
  if (result.code !== 0 && !options.allowFailure && !timedOut) {
    const detail = result.stderr.trim().split("\n").slice(-5).join("\n");
    throw new ToolError(
      `${program} ${args.join(" ")} failed with exit ${result.code}${detail ? `:\n${detail}` : "."}`,
      { exitCode: ExitCode.toolFailed },
    );
  }
  return result;
}

async function _collect(
  stream: ReadableStream<Uint8Array>,
  onText: (text: string) => void,
  maxCapture = Infinity,
): Promise<string> {
  // A plain reader and a streaming decoder, not a TextDecoderStream: piping
  // through a transform stream cost a short command several milliseconds.
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let all = "";
  for (;;) {
    const { done, value } = await reader.read();
    const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
    if (text !== "") {
      all += text;
      if (all.length > maxCapture) all = all.slice(-maxCapture);
      onText(text);
    }
    if (done) return all;
  }
}

function _spawnError(program: string, error: unknown, hint: string | undefined): ToolError {
  if (error instanceof Deno.errors.NotCapable) {
    return new ToolError(`virtdev may not run ${program}: ${error.message}`, {
      exitCode: ExitCode.toolFailed,
      hint: "Run virtdev with the permissions of its 'virtdev' task (or the compiled binary).",
      cause: error,
    });
  }
  if (error instanceof Deno.errors.NotFound) {
    return new ToolError(`${program} is not installed or not on PATH.`, {
      exitCode: ExitCode.toolMissing,
      hint: hint ?? `Install ${program} and try again.`,
      cause: error,
    });
  }
  return new ToolError(`Could not run ${program}: ${error instanceof Error ? error.message : String(error)}`, {
    exitCode: ExitCode.toolFailed,
    cause: error,
  });
}

/**
 * Starts `program` with its standard streams piped (stdin too when asked)
 * and hands back the running child, for programs virtdev talks to while
 * they run (QEMU under the host agent and the installer).
 *
 * @throws {ToolError} exit 69 when the program is not installed, 70 when
 *   it cannot be started.
 */
export function spawnTool(
  program: string,
  args: readonly string[],
  options: { readonly stdin?: boolean; readonly missingHint?: string } = {},
): Deno.ChildProcess {
  try {
    return new Deno.Command(program, {
      args: [...args],
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw _spawnError(program, error, options.missingHint);
  }
}

/** A program started in the background by {@link spawnDetached}. */
export interface DetachedChild {
  readonly pid: number;
  /** Resolves with the exit code if it ends while this process still runs. */
  readonly exited: Promise<number>;
}

/**
 * Starts `program` in a session of its own (setsid) with no standard
 * streams, so that it outlives this process and its terminal.
 *
 * @throws {ToolError} exit 69 when the program is not installed, 70 when
 *   it cannot be started.
 */
export function spawnDetached(
  program: string,
  args: readonly string[],
  options: { readonly missingHint?: string } = {},
): DetachedChild {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: [...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
  } catch (error) {
    throw _spawnError(program, error, options.missingHint);
  }
  child.unref();
  return { pid: child.pid, exited: child.status.then(exitCodeOf) };
}

/**
 * Runs `program` attached to the user's terminal (stdin, stdout and stderr
 * inherited) and returns its exit code. Ctrl-C reaches the child, which
 * decides what it means; virtdev waits for the child either way.
 */
export async function runAttached(
  program: string,
  args: readonly string[],
  options: { readonly missingHint?: string } = {},
): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, { args: [...args], stdin: "inherit", stdout: "inherit", stderr: "inherit" })
      .spawn();
  } catch (error) {
    throw _spawnError(program, error, options.missingHint);
  }
  const ignore = (): void => {};
  Deno.addSignalListener("SIGINT", ignore);
  try {
    return exitCodeOf(await child.status);
  } finally {
    Deno.removeSignalListener("SIGINT", ignore);
  }
}
