/**
 * passt as the host agent runs it: started before QEMU, ready once its
 * unix socket exists, stopped after QEMU. Its socket and log live in
 * `run/net/` (0700).
 *
 * @module
 */
import { privateDirectoryMode, privateFileMode } from "../store/file_modes.ts";
import { spawnTool } from "../store/process.ts";
import { ExitCode, ToolError } from "../store/errors.ts";
import { readFileTail } from "./console_log.ts";
import type { PasstLaunch } from "./network.ts";

/** A running passt. */
export interface RunningPasst {
  readonly pid: number;
  /** Resolves when passt exits, with its status. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Asks passt to end, and waits for it. */
  stop(): Promise<void>;
}

/** passt could not be started; `message` holds its own words. */
export class PasstStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PasstStartError";
  }
}

/** How long passt may take to bind its socket. */
const _readyTimeoutMs = 15_000;

/**
 * Starts passt (or, with `options.name`, another helper that serves a
 * socket: the egress filter) and waits until its socket exists.
 *
 * @throws {PasstStartError} with its log when it exits first or never
 *   binds its socket.
 */
export async function startPasst(
  launch: PasstLaunch,
  options: { readonly name?: string } = {},
): Promise<RunningPasst> {
  const name = options.name ?? "passt";
  await Deno.mkdir(launch.dir, { recursive: true, mode: privateDirectoryMode });
  await Deno.chmod(launch.dir, privateDirectoryMode);
  const child = _spawnBoundToParent(launch.program, launch.args);
  // Its own log file takes what passt says; these streams stay quiet.
  child.stdout.cancel().catch(() => {});
  const stderr = new Response(child.stderr).text();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((value) => exited = value);
  const deadline = Date.now() + _readyTimeoutMs;
  // A look is one stat: often, since QEMU and a resume wait for this socket (passt binds it in about 10 ms, the
  // filter in about 40).
  for (let delay = 2; !exited; delay = Math.min(delay * 2, 10)) {
    if (await _isSocket(launch.socket)) break;
    if (Date.now() > deadline) {
      _kill(child);
      await status;
      throw new PasstStartError(`${name} did not bind its socket within ${_readyTimeoutMs / 1000}s.`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  if (exited) {
    const log = launch.logFile ? (await readFileTail(launch.logFile, 4096).catch(() => undefined)) ?? "" : "";
    const said = `${log}\n${await stderr}`.split("\n").filter((line) => line.trim() && !/syslog/.test(line));
    throw new PasstStartError(`${name} exited (${exited.code}) before it was ready.\n${said.slice(-5).join("\n")}`);
  }
  // passt made them under its umask; nothing in run/ is for others.
  await Deno.chmod(launch.socket, privateFileMode).catch(() => {});
  if (launch.logFile) await Deno.chmod(launch.logFile, privateFileMode).catch(() => {});
  return {
    pid: child.pid,
    exited: child.status,
    async stop() {
      _kill(child);
      await child.status;
    },
  };
}

/**
 * Spawns a helper that the kernel ends when this process dies, however it
 * dies (PR_SET_PDEATHSIG through util-linux's setpriv, which then execs
 * it): a killed host agent leaves no passt behind to serve nobody. Without
 * setpriv, `stop` and `doctor --fix` end such a helper.
 */
function _spawnBoundToParent(program: string, args: readonly string[]): Deno.ChildProcess {
  if (_setprivMissing) return spawnTool(program, args);
  try {
    return spawnTool("setpriv", ["--pdeathsig", "TERM", "--", program, ...args]);
  } catch (error) {
    if (!(error instanceof ToolError) || error.exitCode !== ExitCode.toolMissing) throw error;
    _setprivMissing = true;
    return spawnTool(program, args);
  }
}

let _setprivMissing = false;

function _kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
}

async function _isSocket(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSocket === true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
