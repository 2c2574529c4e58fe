/**
 * SSH port choice for `start`: an explicit port, the project's kept port,
 * or the lowest free one from 2222. "Free" means no listening TCP socket
 * on any address.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";

/** The first port tried when none is given or kept. */
export const firstAutoPort = 2222;

/** Exit codes of port choice, shared by `start`. */
export const PortExit = { invalid: 7, busy: 8 } as const;

/**
 * Parses an explicit port: decimal digits only, 1024 to 65535.
 *
 * @throws {VirtdevError} exit 7 otherwise.
 */
export function parsePort(text: string): number {
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(value >= 1024 && value <= 65535)) {
    throw new VirtdevError(`Invalid port: '${text}' (must be 1024-65535).`, {
      exitCode: PortExit.invalid,
      hint: "Give a port between 1024 and 65535, or leave it out to let virtdev choose.",
    });
  }
  return value;
}

/**
 * Whether nothing listens on TCP `port`, on any address: binding the
 * wildcard addresses fails while any socket listens on the port.
 * (/proc/net/tcp would tell without binding, but Deno grants it only with
 * --allow-all.)
 */
export function isPortFree(port: number): Promise<boolean> {
  for (const hostname of ["0.0.0.0", "::"]) {
    try {
      Deno.listen({ hostname, port, transport: "tcp" }).close();
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) return Promise.resolve(false);
      // No IPv6 on this host: the IPv4 answer stands.
      if (hostname === "::") continue;
      throw error;
    }
  }
  return Promise.resolve(true);
}

/** What {@link choosePort} decided. */
export interface PortChoice {
  readonly port: number;
  /** How it was chosen. */
  readonly source: "explicit" | "kept" | "auto";
}

/**
 * Chooses the SSH port. An explicit port must be free. A kept port is used
 * when free; otherwise, like a first start, the lowest free port from 2222
 * that no other project keeps.
 *
 * @throws {VirtdevError} exit 8 when the explicit port is taken or none is free.
 */
export async function choosePort(
  request: { readonly explicit?: number; readonly kept?: number },
  state: { readonly isFree: (port: number) => Promise<boolean>; readonly keptByOthers: ReadonlySet<number> },
): Promise<PortChoice> {
  if (request.explicit !== undefined) {
    if (!await state.isFree(request.explicit)) {
      throw new VirtdevError(`Port ${request.explicit} is already in use.`, {
        exitCode: PortExit.busy,
        hint: "Choose another port, or leave it out to let virtdev choose.",
      });
    }
    return { port: request.explicit, source: "explicit" };
  }
  if (request.kept !== undefined && await state.isFree(request.kept)) return { port: request.kept, source: "kept" };
  for (let port = firstAutoPort; port <= 65535; port++) {
    if (!state.keptByOthers.has(port) && await state.isFree(port)) return { port, source: "auto" };
  }
  throw new VirtdevError(`No available port found in range ${firstAutoPort}-65535.`, {
    exitCode: PortExit.busy,
    hint: "Stop some listening services or projects, then try again.",
  });
}
