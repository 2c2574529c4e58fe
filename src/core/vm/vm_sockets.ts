/**
 * The interactive sockets of a running VM, checked before use.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { requireRunningVm } from "../guest/guest_access.ts";
import type { Store } from "../store/store.ts";

/** Exit codes shared by `console` and `monitor`. */
export const SocketExit = { notRunning: 4, socketMissing: 5 } as const;

/**
 * The path of project `name`'s console or monitor socket.
 *
 * @throws {VirtdevError} exit 3 for no project, 4 when not running, 5 when
 *   the socket is missing.
 */
export async function requireVmSocket(store: Store, name: string, which: "console" | "monitor"): Promise<string> {
  const { paths } = await requireRunningVm(store, name, SocketExit.notRunning);
  const socket = which === "console" ? paths.runtime.consoleSocket : paths.runtime.monitorSocket;
  try {
    if ((await Deno.lstat(socket)).isSocket) return socket;
  } catch (error) {
    // Missing is reported below.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  throw new VirtdevError(`The ${which} socket of ${name} is missing: ${socket}.`, {
    exitCode: SocketExit.socketMissing,
    hint: `Restart the VM: virtdev stop ${name} && virtdev start ${name}`,
  });
}
