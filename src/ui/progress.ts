/**
 * Progress for long work: on a terminal a live line with elapsed time,
 * elsewhere one line when a stage starts and one when it ends.
 *
 * @module
 */
import type { Ui } from "./io.ts";
import { stripTerminalControls } from "../core/guest/terminal_text.ts";

/** One running stage. */
export interface Stage {
  /** Ends the stage, printing its duration. */
  done(note?: string): void;
  /** Ends the stage as failed. */
  fail(): void;
}

/** Starts a stage called `label`, shown with elapsed seconds. */
export function startStage(ui: Ui, label: string): Stage {
  const started = performance.now();
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  const live = ui.io.stderrIsTerminal;
  label = stripTerminalControls(label);
  let timer: ReturnType<typeof setInterval> | undefined;
  if (live) {
    const draw = (): void => ui.io.err(`\r\x1b[2K${label}... ${ui.colors.dim(elapsed())}`);
    draw();
    timer = setInterval(draw, 250);
  } else {
    ui.info(`${label}...`);
  }
  const finish = (status: string): void => {
    if (timer !== undefined) clearInterval(timer);
    if (live) ui.io.err(`\r\x1b[2K`);
    ui.io.err(`${label}: ${status} (${elapsed()})\n`);
  };
  return {
    done: (note) => finish(ui.colors.green(note ?? "done")),
    fail: () => finish(ui.colors.red("failed")),
  };
}
