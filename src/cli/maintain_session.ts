/**
 * A maintenance session with the CLI's output, prompt and Ctrl-C, for
 * `maintain` and `upgrade`.
 *
 * @module
 */
import type { Context } from "./context.ts";
import { lockTaker } from "./locked.ts";
import { maintainBase, type MaintainRequest, type MaintainResult } from "../core/base/maintain.ts";

/** Runs a maintenance session with the CLI's output, prompt and Ctrl-C; shared with `upgrade`. */
export async function runMaintain(context: Context, request: MaintainRequest): Promise<MaintainResult> {
  const { ui, store, config, env } = context;
  const controller = new AbortController();
  const onInterrupt = (): void => {
    if (!controller.signal.aborted) ui.warn("interrupted: aborting the maintenance session.");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const output = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
  try {
    return await maintainBase(store, request, {
      config,
      env,
      signal: controller.signal,
      lock: lockTaker(context),
      confirm: () => ui.confirmTyped("reseal"),
      progress: {
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
        stage: (line) => ui.info(`${line}...`, "bold"),
        output: output.write,
        diff: (text) => {
          const diff = ui.guestStream();
          diff.write(text);
          diff.end();
        },
      },
    });
  } finally {
    output.end();
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
