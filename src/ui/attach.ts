/**
 * Attaches the terminal to a unix socket (the serial console or the HMP
 * monitor) with no extra tools. On a terminal, input is raw and Ctrl-]
 * detaches; otherwise input is piped until it ends.
 *
 * @module
 */

/** The detach key, Ctrl-]. */
export const detachByte = 0x1d;

/** How an attachment ended. */
export type AttachEnd = "detached" | "closed" | "input-ended";

/**
 * Connects stdin and stdout to the socket at `path` until the user detaches
 * (Ctrl-] on a terminal), the peer closes, or piped input ends.
 */
export async function attachSocket(path: string): Promise<AttachEnd> {
  const connection = await Deno.connect({ transport: "unix", path });
  const terminal = Deno.stdin.isTerminal();
  if (terminal) Deno.stdin.setRaw(true);
  try {
    const output = (async (): Promise<AttachEnd> => {
      try {
        for await (const chunk of connection.readable) await _writeAll(Deno.stdout, chunk);
      } catch {
        // The peer went away.
      }
      return "closed";
    })();
    const input = (async (): Promise<AttachEnd> => {
      const buffer = new Uint8Array(4096);
      for (;;) {
        const n = await Deno.stdin.read(buffer);
        if (n === null) break;
        const data = buffer.subarray(0, n);
        const escape = terminal ? data.indexOf(detachByte) : -1;
        if (escape !== -1) {
          await connection.write(data.subarray(0, escape));
          return "detached";
        }
        await connection.write(data);
      }
      // Let the peer answer what was sent: QEMU closes its side on our EOF.
      await connection.closeWrite();
      return await output === "closed" ? "input-ended" : "closed";
    })();
    return await Promise.race([output, input]);
  } finally {
    if (terminal) Deno.stdin.setRaw(false);
    try {
      connection.close();
    } catch {
      // Already closed.
    }
  }
}

async function _writeAll(stream: typeof Deno.stdout, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await stream.write(data.subarray(written));
}
