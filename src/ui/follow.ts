/**
 * `tail -f` for one file: prints what is there, then what is appended,
 * until interrupted.
 *
 * @module
 */

/** Prints `path` through `write`, then follows appends until Ctrl-C. */
export async function followFile(path: string, write: (text: string) => void): Promise<number> {
  let offset = 0;
  const decoder = new TextDecoder();
  const drain = async (): Promise<void> => {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return; // not written yet
      throw error;
    }
    try {
      if ((await file.stat()).size < offset) offset = 0;
      await file.seek(offset, Deno.SeekMode.Start);
      const buffer = new Uint8Array(65536);
      for (;;) {
        const n = await file.read(buffer);
        if (n === null) break;
        offset += n;
        write(decoder.decode(buffer.subarray(0, n), { stream: true }));
      }
    } finally {
      file.close();
    }
  };
  await drain();
  const stop = Promise.withResolvers<void>();
  const onInterrupt = (): void => stop.resolve();
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    for (;;) {
      const tick = new Promise<"tick">((resolve) => setTimeout(() => resolve("tick"), 500));
      if (await Promise.race([tick, stop.promise.then(() => "stop" as const)]) === "stop") return 0;
      await drain();
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
