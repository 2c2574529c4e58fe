/**
 * The host agent: one small virtdev process per running VM, run by the
 * supervisor (detached, or as the systemd unit's main process). It starts
 * QEMU as its child and stays with it to the end:
 *
 * - it keeps the serial console: QEMU's stdio is the guest's serial port;
 *   the agent writes it to a console log capped at its limit, notes the
 *   readiness lines the guest contract prints (so that nobody has to read
 *   the log to know them), and serves `run/console.sock` for `virtdev
 *   console`, for any number of viewers;
 * - it reports the launch: `run/agent.json` says whether QEMU came up
 *   (answered QMP, so its port and sockets are bound) or why not;
 * - it records QEMU's complaints and exit in vm.log.
 *
 * Whether the VM runs is still decided from QEMU's pidfile and the process
 * table (`runtime_state.ts`), never from the agent.
 *
 * @module
 */
import { privateFileMode } from "../store/file_modes.ts";
import { basename, dirname } from "../store/path.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { pathExists, type ProjectPaths, Store } from "../store/store.ts";
import { bootDivergedLine, notReadyLine, readinessLine } from "../guest/guest_contract.ts";
import { projectSshTarget, usableControlPath } from "../guest/ssh.ts";
import { CappedLog, consoleTailLines, MarkerScanner } from "./console_log.ts";
import { haltAfterStop, type VmHalt, writeHaltRecord } from "./vm_halt.ts";
import { QmpClient } from "./qmp.ts";
import { qemuLaunchCommand } from "./qemu_launch.ts";
import { readRuntimeRecord } from "./runtime_state.ts";
import { appendVmLog, echoVmLogToStderr } from "./vm_log.ts";
import { spawnTool } from "../store/process.ts";
import { VirtdevError } from "../store/errors.ts";
import { PasstStartError, startPasst } from "./passt_process.ts";
import { ForwardKeeper } from "./forward_keeper.ts";
import {
  emptyProof,
  endsBoot,
  type ShutdownProof,
  type ShutdownWatch,
  withEvent,
  writeShutdownProof,
} from "./shutdown_proof.ts";
import { readForwards } from "./forwards.ts";
import { consoleMilestones, formatTimeline } from "./boot_timeline.ts";
import {
  finishIncoming,
  guardSuspend,
  setGuestClock,
  suspendedStateLoadFailure,
  suspendInProgress,
} from "./resume_agent.ts";
import { openSharedConnection, plainLogin, type SharedConnection } from "./shared_connection.ts";

export { hostAgentArgument } from "./host_agent_argument.ts";
export { type AgentState, readAgentState, type Readiness } from "./agent_state.ts";
import type { AgentState, Readiness } from "./agent_state.ts";

/** The project paths of the project directory `dir`. */
export function projectPathsAt(dir: string): ProjectPaths {
  return new Store(dirname(dirname(dir))).project(basename(dir));
}

/** The most QEMU stderr a boot may add to vm.log; beyond it lines are dropped. */
const _maxQemuLogBytes = 64 * 1024;
/** The most output a slow console viewer may have queued before it misses some. */
const _maxViewerBacklog = 1 << 20;
/** How long QEMU may take to answer QMP. */
const _launchTimeoutMs = 60_000;

/**
 * Runs the agent for the project in `dir` until its QEMU exits.
 * `listening` is the name its console socket is bound to before it is
 * renamed into place.
 *
 * @returns QEMU's exit code, or 1 when it could not be started.
 */
export async function runHostAgent(dir: string, listening: string): Promise<number> {
  const paths = projectPathsAt(dir);
  echoVmLogToStderr();
  if (dirname(listening) !== paths.runDir || !/^console\.[0-9a-f]{8}\.sock$/.test(basename(listening))) {
    await appendVmLog(paths, `host agent: refusing a console socket outside run/: ${listening}`);
    return 1;
  }
  const record = await readRuntimeRecord(paths);
  if (record?.qemu === undefined) {
    await appendVmLog(paths, "host agent: no launch record; nothing to run");
    return 1;
  }
  let state: AgentState = { pid: Deno.pid, phase: "launching", readiness: "pending" };
  const stateWriter = _throttledWriter(paths.runtime.agent, 100);
  const setState = async (next: Partial<AgentState>, options: { readonly now?: boolean } = {}) => {
    state = { ...state, ...next };
    await stateWriter.write(`${JSON.stringify(state)}\n`, options);
  };
  await setState({}, { now: true });

  // The network comes first: QEMU connects to passt's socket as it starts, or to the egress filter's, which sits
  // between QEMU and passt. The two start side by side (a resume waits for both): the filter connects to passt only
  // once QEMU has connected to it.
  const [passtStart, filterStart] = await Promise.allSettled([
    record.passt ? startPasst(record.passt) : undefined,
    record.filter
      ? startPasst(
        { ...record.filter, socket: `${record.filter.netDir}/vm.sock`, dir: record.filter.netDir },
        { name: "the egress filter" },
      )
      : undefined,
  ]);
  const passt = passtStart.status === "fulfilled" ? passtStart.value : undefined;
  const filter = filterStart.status === "fulfilled" ? filterStart.value : undefined;
  for (const start of [passtStart, filterStart]) {
    if (start.status === "fulfilled") continue;
    await filter?.stop();
    await passt?.stop();
    const error = start.reason;
    if (!(error instanceof PasstStartError) && !(error instanceof VirtdevError)) throw error;
    await appendVmLog(paths, `host agent: ${error.message}`);
    await setState({ phase: "failed", error: error.message }, { now: true });
    return 1;
  }
  if (passt) {
    await setState({ network: "up", passtPid: passt.pid }, { now: true });
    await appendVmLog(paths, `passt started (PID ${passt.pid})`);
  }
  if (filter) {
    await setState({ filterPid: filter.pid }, { now: true });
    await appendVmLog(paths, `egress filter started (PID ${filter.pid})`);
  }
  const log = await CappedLog.create(paths.consoleLog, { maxBytes: record.consoleLogBytes ?? 16 << 20 });
  let child: Deno.ChildProcess;
  const qemuStartedAt = Date.now();
  try {
    const qemu = qemuLaunchCommand(record.qemu, ["-pidfile", paths.runtime.pidFile]);
    child = spawnTool(qemu.program, qemu.args, { stdin: true });
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    await appendVmLog(paths, `host agent: ${text}`);
    await setState({ phase: "failed", error: text }, { now: true });
    log.close();
    await filter?.stop();
    await passt?.stop();
    return 1;
  }
  let qemuEnded = false;
  passt?.exited.then(async (status) => {
    if (qemuEnded) return;
    await appendVmLog(
      paths,
      `passt exited (${status.signal ?? `exit ${status.code}`}): the guest has no network until it is restarted`,
    );
    await setState({ network: "lost", passtPid: undefined }, { now: true });
  });
  filter?.exited.then(async (status) => {
    // It ends cleanly when QEMU closes its side (QEMU is ending) or when
    // passt dies (passt's own watch reports that).
    if (qemuEnded || (status.code === 0 && status.signal === null)) return;
    await appendVmLog(
      paths,
      `the egress filter exited (${
        status.signal ?? `exit ${status.code}`
      }): the guest has no network (never an unfiltered one) until it is restarted`,
    );
    await setState({ network: "lost", filterPid: undefined }, { now: true });
  });
  const forward = (): void => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  Deno.addSignalListener("SIGTERM", forward);
  // Detached, or under systemd: a terminal's hangup or Ctrl-C is not for us.
  const ignore = (): void => {};
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGHUP", ignore);

  // Forwards are set up once the guest is ready, again after each reboot,
  // and whenever 'virtdev forward' changes them (it sends SIGUSR1).
  const keeper = record.ssh
    ? new ForwardKeeper(
      { project: paths.name, port: record.port, identity: record.ssh.identity, knownHosts: paths.knownHosts },
      (forwards) => setState({ forwards }),
    )
    : undefined;
  let ready = false;
  const reconcileForwards = async () => {
    if (!keeper || !ready) return;
    try {
      keeper.reconcile(await readForwards(paths));
    } catch (error) {
      await appendVmLog(paths, `host agent: forwards: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const onForwardsChanged = (): void => {
    reconcileForwards();
  };
  Deno.addSignalListener("SIGUSR1", onForwardsChanged);

  // A resumed guest's clock stood still while it was suspended: it is set
  // before the guest counts as ready, so that 'wait' returns with it right.
  let clockPending = record.resume !== undefined && record.ssh !== undefined;
  // Once an agent: a guest that says it is ready again (a reboot inside it) is logged into by 'wait'. Without a
  // control socket ssh could use, the connection could not be shared, and 'wait' logs in itself.
  let loginPending = record.resume === undefined && record.ssh !== undefined &&
    usableControlPath(paths.runtime.sshControl) !== undefined;
  let sharedConnection: SharedConnection | undefined;
  /** The clock's login, started the moment the resumed guest runs (see below). */
  let clockLogin: ReturnType<typeof setGuestClock> | undefined;
  const publishReadiness = async (readiness: Readiness) => {
    if (readiness === "ready" && clockPending && record.ssh) {
      clockPending = false;
      const { outcome: clock, connection } = await (clockLogin ?? setGuestClock(
        projectSshTarget(paths, { port: record.port, identity: record.ssh.identity }),
      ));
      sharedConnection = connection;
      await appendVmLog(
        paths,
        clock.set
          ? `host agent: set the resumed guest's clock from the host's (${
            clock.by === "helper" ? "by the helper the suspend armed" : "through sudo: no armed helper answered"
          })`
          : `host agent: could not set the resumed guest's clock: ${clock.detail}`,
      );
      await setState({ clock }, { now: true });
    } else if (readiness === "ready" && loginPending && record.ssh) {
      // A cold boot's first login, made here at the ready line rather than by 'wait': the guest's
      // readiness is published with its outcome, so that 'wait' needs no login of its own, and the
      // connection stays as the master that a suspend's, 'ssh''s and 'run''s logins share.
      loginPending = false;
      const login = await openSharedConnection(
        projectSshTarget(paths, { port: record.port, identity: record.ssh.identity }),
        plainLogin,
      );
      if ("connection" in login) sharedConnection = login.connection;
      else await appendVmLog(paths, `host agent: the first login failed: ${login.detail}`);
      await setState({ login: "connection" in login ? { ok: true } : { ok: false, detail: login.detail } });
    }
    await setState({ readiness }, { now: readiness === "ready" });
    ready = readiness === "ready";
    if (ready) reconcileForwards();
  };

  // Where this boot spends its time, logged once the guest says it is ready.
  const milestones: { name: string; seconds: number }[] = [];
  const milestone = (name: string): void => {
    if (!milestones.some((m) => m.name === name)) {
      milestones.push({ name, seconds: (Date.now() - qemuStartedAt) / 1000 });
    }
  };
  const loggedMilestones = new Set<string>();
  let divergenceNoted = false;
  const viewers = new _Viewers(child.stdin.getWriter());
  const stderrTail = _keepQemuStderr(child.stderr, paths);
  const consoleDone = _pumpConsole(child.stdout, {
    log,
    viewers,
    onMilestone: (name) => {
      // Each milestone is logged once a boot: the console is the guest's,
      // and a guest that prints its markers in a loop must not flood vm.log.
      if (loggedMilestones.has(name)) return;
      milestone(name);
      // The ready line writes the boot's timeline; a milestone that comes
      // later (the serial getty often does) gets a line of its own.
      if (name === "ready") {
        for (const m of milestones) loggedMilestones.add(m.name);
        appendVmLog(paths, formatTimeline(milestones));
      } else if (loggedMilestones.has("ready")) {
        loggedMilestones.add(name);
        appendVmLog(paths, formatTimeline(milestones.filter((m) => m.name === name)));
      }
    },
    onReadiness: (readiness) => {
      publishReadiness(readiness);
    },
    onBootDiverged: async () => {
      // Once: the guest may say it as often as it likes, and faster than a file is written (a check of the
      // file alone let a flood through, one note per marker in flight).
      if (divergenceNoted) return;
      divergenceNoted = true;
      if (await pathExists(paths.kernelDiverged)) return;
      await writeFileAtomic(paths.kernelDiverged, `${new Date().toISOString()}\n`, { mode: privateFileMode })
        .catch(() => {});
      await appendVmLog(
        paths,
        "host agent: the guest's own default kernel is not the base's (updated inside the project): it boots through its firmware from the next start",
      );
    },
  });
  const status = child.status;

  let launched = await _waitForQmp(paths, status);
  let failure: string | undefined;
  if (launched && record.resume) launched = await _loadSuspendedState(paths, { keep: record.resume.keep });
  // The resumed guest runs: its clock's login starts now, beside the agent's own setting up below.
  if (launched && clockPending && record.ssh && record.resume?.readiness === "ready") {
    clockLogin = setGuestClock(projectSshTarget(paths, { port: record.port, identity: record.ssh.identity }));
  }
  // Whatever kept a resume from running (QEMU's own exit included), start then boots cold.
  if (!launched && record.resume) failure = suspendedStateLoadFailure;
  let server: _ConsoleServer | undefined;
  let watching: Promise<ShutdownProof | undefined> | undefined;
  if (launched) {
    for (const socket of [paths.runtime.qmpSocket, paths.runtime.qmpWatchSocket, paths.runtime.monitorSocket]) {
      await Deno.chmod(socket, privateFileMode).catch(() => {});
    }
    server = await _ConsoleServer.open(paths, listening, viewers);
    watching = _watchEvents(paths, {
      watch: record.shutdownWatch,
      onHalt: async (halt) => {
        await setState({ halt }, { now: true });
        if (halt?.ends) await writeHaltRecord(paths, halt).catch(() => {});
      },
    });
    milestone("qmp");
    await setState({ phase: "running", qemuStartedAt }, { now: true });
    // A resumed guest does not print its readiness again: it said it before the suspend.
    if (record.resume?.readiness === "ready") publishReadiness("ready");
  } else {
    forward();
  }
  const exit = await status;
  qemuEnded = true;
  Deno.removeSignalListener("SIGUSR1", onForwardsChanged);
  await keeper?.stopAll();
  await sharedConnection?.end({ guestGone: true });
  await filter?.stop();
  await passt?.stop();
  const code = exit.signal !== null ? 128 + (exit.signal === "SIGKILL" ? 9 : 15) : exit.code;
  const proof = await watching;
  if (proof) {
    await writeShutdownProof(paths.shutdownProof, { ...proof, qemuExit: code }).catch(async (error) => {
      await appendVmLog(paths, `host agent: cannot record the shutdown: ${error}`);
    });
  }
  await consoleDone;
  server?.close();
  log.close();
  const complaint = (await stderrTail).trim();
  if (launched) {
    // No state is written now: whoever stopped the VM may already have
    // cleared run/, and a new start may be filling it.
    stateWriter.cancel();
    await appendVmLog(paths, `QEMU exited (${exit.signal ?? `exit ${exit.code}`})`);
  } else {
    const exited = `QEMU exited (${exit.signal ?? `exit ${exit.code}`}) before it was ready.`;
    const error = [failure, complaint || (failure ? "" : exited)].filter(Boolean).join(": ");
    await setState({ phase: "failed", error }, { now: true });
  }
  Deno.removeSignalListener("SIGTERM", forward);
  Deno.removeSignalListener("SIGINT", ignore);
  Deno.removeSignalListener("SIGHUP", ignore);
  return code;
}

/**
 * Watches QEMU's events on the second QMP socket. A `STOP` is followed by
 * the run state: a KVM internal error or a kernel panic (pvpanic pauses
 * QEMU) is recorded with the console's last lines in vm.log, and QEMU is
 * ended, so that nobody waits on a guest that will not go on; a failed
 * disk write (a full host disk) or a pause by hand is recorded and kept,
 * and a `RESUME` clears it. For the maintenance VM (`watch`) the events
 * also make the shutdown proof; once the guest has powered off or
 * panicked (QEMU pauses), QEMU is told to quit. Resolves with the proof
 * when QEMU closes the connection.
 */
async function _watchEvents(
  paths: ProjectPaths,
  options: { readonly watch?: ShutdownWatch; readonly onHalt: (halt: VmHalt | undefined) => Promise<void> },
): Promise<ShutdownProof | undefined> {
  const watch = options.watch;
  let proof = watch ? emptyProof(watch.token) : undefined;
  let client: QmpClient;
  try {
    client = await QmpClient.connect(paths.runtime.qmpWatchSocket);
  } catch (error) {
    await appendVmLog(paths, `host agent: cannot watch QEMU's run state: ${error}`);
    return proof;
  }
  if (proof) await writeShutdownProof(paths.shutdownProof, proof);
  let halted: VmHalt | undefined;
  try {
    for (;;) {
      const event = await client.nextEvent();
      if (event === undefined) break;
      if (proof) {
        const next = withEvent(proof, event);
        const changed = next.guestShutdown !== proof.guestShutdown || next.hostPowerdown !== proof.hostPowerdown ||
          next.panicked !== proof.panicked;
        proof = next;
        if (changed) await writeShutdownProof(paths.shutdownProof, proof);
        if (endsBoot(event)) {
          await appendVmLog(paths, `host agent: ${proof.events.at(-1)}; ending QEMU`);
          await client.execute("quit").catch(() => {});
        }
      }
      if (event.event === "STOP") {
        // A pause for a suspend is not a halt; the guard sees it through.
        if (await suspendInProgress(paths)) {
          await guardSuspend(client, paths);
          continue;
        }
        const halt = await haltAfterStop(client);
        if (halt === undefined || halt.state === halted?.state) continue;
        halted = halt;
        await options.onHalt(halt);
        await appendVmLog(paths, [
          `host agent: the guest stopped running: ${halt.reason} (${halt.state})${halt.ends ? "; ending QEMU" : ""}`,
          // A panic's first line comes 30 to 80 lines before its end: the call trace lists stale frames
          // too (`? …`), as many as the stack held: a tail of 40 lines has lost the first line.
          ...(await consoleTailLines(paths.consoleLog, { lines: 150, maxBytes: 16384 })).map((line) =>
            `console: ${line}`
          ),
        ]);
        if (halt.ends) await client.execute("quit").catch(() => {});
      } else if (event.event === "RESUME" && halted) {
        halted = undefined;
        await options.onHalt(undefined);
        await appendVmLog(paths, "host agent: the guest runs again");
      }
    }
  } finally {
    client.close();
  }
  return proof;
}

/** How long QEMU may take to load a suspended state. */
const _loadTimeoutMs = 300_000;

/** Lets QEMU load the suspended state, then consumes it and lets the guest run. */
async function _loadSuspendedState(paths: ProjectPaths, options: { readonly keep?: boolean }): Promise<boolean> {
  let client: QmpClient;
  try {
    client = await QmpClient.connect(paths.runtime.qmpSocket);
  } catch {
    return false;
  }
  try {
    return await finishIncoming(client, paths, { timeoutMs: _loadTimeoutMs, keep: options.keep });
  } catch (error) {
    await appendVmLog(paths, `host agent: resuming: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  } finally {
    client.close();
  }
}

/** Waits until QEMU answers QMP (it has initialised) or exits first. */
async function _waitForQmp(paths: ProjectPaths, status: Promise<Deno.CommandStatus>): Promise<boolean> {
  let exited = false;
  status.then(() => exited = true);
  const deadline = Date.now() + _launchTimeoutMs;
  let delay = 2;
  while (!exited && Date.now() < deadline) {
    try {
      (await QmpClient.connect(paths.runtime.qmpSocket)).close();
      return true;
    } catch {
      // Not listening yet.
    }
    // QEMU answers some 20 ms after its start: looked for often at first.
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10);
  }
  return false;
}

/** Streams the console: into the capped log, past the readiness scanner, out to the viewers. */
async function _pumpConsole(
  stdout: ReadableStream<Uint8Array>,
  sinks: {
    readonly log: CappedLog;
    readonly viewers: _Viewers;
    readonly onReadiness: (r: Readiness) => unknown;
    readonly onMilestone: (name: string) => unknown;
    readonly onBootDiverged: () => unknown;
  },
): Promise<void> {
  const scanner = new MarkerScanner([readinessLine, notReadyLine]);
  const bootLines = new MarkerScanner([bootDivergedLine]);
  const milestones = new MarkerScanner(consoleMilestones.map((m) => m.marker));
  let first = true;
  let readiness: Readiness = "pending";
  let logging = true;
  try {
    for await (const chunk of stdout) {
      // A log that cannot be written (a full disk) is given up, never the
      // console: a reader that stopped would stall the guest's serial port.
      if (first) {
        first = false;
        sinks.onMilestone("console");
      }
      for (const marker of milestones.push(chunk)) {
        sinks.onMilestone(consoleMilestones.find((m) => m.marker === marker)!.name);
      }
      if (logging) await sinks.log.write(chunk).catch(() => logging = false);
      if (bootLines.push(chunk).length > 0) sinks.onBootDiverged();
      const seen = scanner.push(chunk).at(-1);
      const next: Readiness | undefined = seen === readinessLine
        ? "ready"
        : seen === notReadyLine
        ? "failed"
        : undefined;
      if (next !== undefined && next !== readiness) {
        readiness = next;
        sinks.onReadiness(next);
      }
      sinks.viewers.broadcast(chunk);
    }
  } catch {
    // QEMU went away.
  }
}

/** Copies QEMU's stderr into vm.log (bounded per boot) and returns its last 4 KiB. */
async function _keepQemuStderr(stderr: ReadableStream<Uint8Array>, paths: ProjectPaths): Promise<string> {
  let tail = "";
  let logged = 0;
  let pending = "";
  const decoder = new TextDecoder();
  const flush = async (final: boolean) => {
    const lines = pending.split("\n");
    pending = final ? "" : lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") continue;
      if (logged < _maxQemuLogBytes) await appendVmLog(paths, `qemu: ${line.slice(0, 1000)}`);
      else if (logged - line.length < _maxQemuLogBytes) await appendVmLog(paths, "qemu: (further messages dropped)");
      logged += line.length;
    }
  };
  try {
    for await (const chunk of stderr) {
      const text = decoder.decode(chunk, { stream: true });
      tail = (tail + text).slice(-4096);
      pending = (pending + text).slice(-65536);
      await flush(false);
    }
  } catch {
    // Closed.
  }
  await flush(true);
  return tail;
}

/** The console's viewers: output goes to all, input from any goes to the guest. */
class _Viewers {
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  readonly #viewers = new Set<{ writer: WritableStreamDefaultWriter<Uint8Array>; backlog: number }>();

  constructor(input: WritableStreamDefaultWriter<Uint8Array>) {
    this.#input = input;
  }

  /** Sends `chunk` to every viewer; one that lags too far misses it rather than stall the guest. */
  broadcast(chunk: Uint8Array): void {
    for (const viewer of this.#viewers) {
      if (viewer.backlog > _maxViewerBacklog) continue;
      viewer.backlog += chunk.length;
      viewer.writer.write(chunk).then(
        () => viewer.backlog -= chunk.length,
        () => this.#viewers.delete(viewer),
      );
    }
  }

  /** Serves one viewer until it hangs up. */
  async serve(connection: Deno.UnixConn): Promise<void> {
    const viewer = { writer: connection.writable.getWriter(), backlog: 0 };
    this.#viewers.add(viewer);
    try {
      for await (const chunk of connection.readable) await this.#input.write(chunk);
    } catch {
      // The viewer went away.
    } finally {
      this.#viewers.delete(viewer);
      await viewer.writer.close().catch(() => {});
      try {
        connection.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Hangs up on every viewer. */
  closeAll(): void {
    for (const viewer of this.#viewers) viewer.writer.close().catch(() => {});
    this.#viewers.clear();
  }
}

/**
 * The console socket. Deno unlinks a unix socket's path when its listener
 * closes, whatever file is there by then, so the agent listens on a name of
 * its own and renames it into place; on closing it removes `console.sock`
 * only if it is still its own socket.
 */
class _ConsoleServer {
  readonly #listener: Deno.UnixListener;
  readonly #viewers: _Viewers;
  readonly #path: string;
  readonly #inode: number | null;

  private constructor(listener: Deno.UnixListener, viewers: _Viewers, path: string, inode: number | null) {
    this.#listener = listener;
    this.#viewers = viewers;
    this.#path = path;
    this.#inode = inode;
    this.#accept();
  }

  static async open(paths: ProjectPaths, own: string, viewers: _Viewers): Promise<_ConsoleServer> {
    const listener = Deno.listen({ transport: "unix", path: own });
    await Deno.chmod(own, privateFileMode);
    await Deno.rename(own, paths.runtime.consoleSocket);
    const inode = (await Deno.lstat(paths.runtime.consoleSocket)).ino;
    return new _ConsoleServer(listener, viewers, paths.runtime.consoleSocket, inode);
  }

  async #accept(): Promise<void> {
    try {
      for await (const connection of this.#listener) this.#viewers.serve(connection);
    } catch {
      // Closed.
    }
  }

  close(): void {
    this.#viewers.closeAll();
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    try {
      if (Deno.lstatSync(this.#path).ino === this.#inode) Deno.removeSync(this.#path);
    } catch {
      // Gone already, or not ours: a new boot's.
    }
  }
}

/**
 * Writes a small file atomically at most once per `intervalMs`, the last
 * value winning, so a guest that prints readiness lines in a loop cannot
 * turn them into a storm of file writes.
 */
/**
 * Writes `text` over the start of the existing file at `path`, padded with
 * spaces to its old length (JSON allows them): for a full host disk, where
 * a new file cannot be made but the blocks the old one holds can be
 * rewritten. The disk filling up is the very news `status` must get.
 */
async function _overwriteInPlace(path: string, text: string): Promise<void> {
  using file = await Deno.open(path, { write: true });
  const size = (await file.stat()).size;
  const bytes = new TextEncoder().encode(text.padEnd(size, " "));
  for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
}

function _throttledWriter(path: string, intervalMs: number): {
  write(text: string, options?: { readonly now?: boolean }): Promise<void>;
  /** Drops a pending write. */
  cancel(): void;
} {
  let latest: string | undefined;
  let lastWrite = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let chain = Promise.resolve();
  const flush = (): Promise<void> => {
    timer = undefined;
    const text = latest;
    latest = undefined;
    if (text === undefined) return chain;
    lastWrite = Date.now();
    chain = chain.then(() => writeFileAtomic(path, text, { mode: privateFileMode }))
      .catch(() => _overwriteInPlace(path, text))
      .catch(() => {});
    return chain;
  };
  return {
    write(text, options = {}) {
      latest = text;
      if (options.now) {
        if (timer !== undefined) clearTimeout(timer);
        return flush();
      }
      if (timer === undefined) timer = setTimeout(flush, Math.max(0, lastWrite + intervalMs - Date.now()));
      return Promise.resolve();
    },
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      latest = undefined;
    },
  };
}
