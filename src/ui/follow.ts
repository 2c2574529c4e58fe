/**
 * `tail -f` for one file: prints what is there, then what is appended,
 * until interrupted.
 *
 * @module
 */
import { FileFollower } from "../core/vm/console_log.ts";

/** Prints `path` through `write`, then follows appends until Ctrl-C. */
export async function followFile(path: string, write: (text: string) => void): Promise<number> {
  const follower = new FileFollower(path);
  const decoder = new TextDecoder();
  const drain = async (): Promise<void> => {
    for (let chunk = await follower.read(); chunk.length > 0; chunk = await follower.read()) {
      write(decoder.decode(chunk, { stream: true }));
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
