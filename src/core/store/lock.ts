/**
 * The store lock: a non-blocking exclusive flock(2) on `VIRTDEV_HOME/lock`.
 * The holder writes its PID and command line into the file so that a loser
 * can say who holds it. The kernel releases the lock when the holder exits,
 * however it exits.
 *
 * @module
 */
import { LockBusyError } from "./errors.ts";
import { isProcessAlive } from "./processes.ts";
import { ensurePrivateDirectory, privateFileMode } from "./file_modes.ts";
import type { Store } from "./store.ts";

/** Length of the holder record; fixed so that it is replaced in one write. */
const _recordLength = 256;

/** A held store lock; release it, or let process exit release it. */
export interface StoreLock extends Disposable {
  /** Releases the lock. */
  release(): void;
}

/**
 * Takes the store lock the one way every mutating command does: waiting
 * when asked, then finishing what a crash left half done under it (a
 * move). The CLI makes it; the layers below the projects take it as a
 * parameter, since they may not know what a move is.
 */
export type LockTaker = (command: string, options?: { readonly waitSeconds?: number }) => Promise<StoreLock>;

/** Who holds the lock, as far as the lock file tells. */
export interface LockHolder {
  /** The holder's PID, if the record names a live process. */
  readonly pid: number | undefined;
  /** The holder's command, e.g. `create foo`. */
  readonly command: string | undefined;
}

/**
 * Takes the store lock, by default without waiting.
 *
 * @param command what this process is doing, e.g. `create foo`; shown to
 *   anyone who finds the lock held.
 * @param options.waitSeconds how long to keep trying while the lock is
 *   held; 0 (the default) fails at once.
 * @throws {LockBusyError} exit 75 when another process holds it.
 */
export async function acquireLock(
  store: Store,
  command: string,
  options: { readonly waitSeconds?: number } = {},
): Promise<StoreLock> {
  await ensurePrivateDirectory(store.root);
  const file = await Deno.open(store.lockFile, { read: true, write: true, create: true, mode: privateFileMode });
  const deadline = Date.now() + (options.waitSeconds ?? 0) * 1000;
  try {
    // A holder that has exited by the time its record is read has released
    // the lock: try again rather than blame a process that is gone.
    for (let attempt = 0;; attempt++) {
      if (await file.tryLock(true)) break;
      const holder = await readLockHolder(store);
      // A waiter queues while anyone holds the lock, even a holder whose
      // recorded PID has gone (flock(1) outliving the shell that wrote it).
      if (Date.now() < deadline && !holder.command?.startsWith("maintain")) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (holder.pid !== undefined || attempt >= 20) throw lockBusyError(store, holder);
    }
  } catch (error) {
    file.close();
    throw error;
  }
  const record = `${Deno.pid} ${command.replace(/\s+/g, " ")}`.slice(0, _recordLength - 1).padEnd(
    _recordLength - 1,
    " ",
  ) + "\n";
  await file.seek(0, Deno.SeekMode.Start);
  await file.write(new TextEncoder().encode(record));
  await file.truncate(_recordLength);
  return _held(file);
}

/**
 * Takes an exclusive lock on the file at `path` (made if missing), waiting
 * for as long as another process holds it. For short, per-resource
 * serialisation such as one project's backups.
 */
export async function holdFileLock(path: string): Promise<StoreLock> {
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: privateFileMode });
  try {
    await file.lock(true);
  } catch (error) {
    file.close();
    throw error;
  }
  return _held(file);
}

/** A held lock on `file`, released once. */
function _held(file: Deno.FsFile): StoreLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    try {
      file.unlockSync();
    } finally {
      file.close();
    }
  };
  return { release, [Symbol.dispose]: release };
}

/**
 * Reads the holder record. A record is written right after the lock is
 * taken, so an empty or stale record is read again for a short while.
 */
export async function readLockHolder(store: Store): Promise<LockHolder> {
  let last: LockHolder = { pid: undefined, command: undefined };
  for (let attempt = 0; attempt < 10; attempt++) {
    let text = "";
    try {
      text = await Deno.readTextFile(store.lockFile);
    } catch (error) {
      // Gone: treated as an empty record.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    // "<pid> <command>" from virtdev; a bare "<pid>" from the original bash
    // tool, or from flock(1) in a user's script.
    const match = /^(\d+)(?:\s+(.*))?$/.exec(text.trim());
    if (match) {
      const pid = Number(match[1]);
      last = { pid, command: match[2]?.trim() || undefined };
      if (await isProcessAlive(pid)) return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    pid: last.pid !== undefined && await isProcessAlive(last.pid) ? last.pid : undefined,
    command: last.command,
  };
}

/** The exit-75 error for a held lock, with a message that names the holder. */
export function lockBusyError(store: Store, holder: LockHolder): LockBusyError {
  const who = holder.pid === undefined ? "PID unknown" : `PID ${holder.pid}`;
  if (holder.command?.startsWith("maintain")) {
    return new LockBusyError(`Base system maintenance is in progress (virtdev maintain, ${who}).`, {
      holderPid: holder.pid,
      hint: [
        "Project commands wait until the maintenance session ends.",
        "Reach the maintenance VM with 'virtdev ssh maintenance', or end it with 'virtdev stop maintenance'.",
      ],
    });
  }
  const what = holder.command ? `'virtdev ${holder.command}'` : "another virtdev command";
  return new LockBusyError(`Another virtdev operation is in progress: ${what} (${who}).`, {
    holderPid: holder.pid,
    hint: `Try again when it has finished. The lock is ${store.lockFile}.`,
  });
}
