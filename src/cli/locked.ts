/**
 * Runs a piece of work under the store lock, after finishing whatever a
 * crash left half done that is finished under it (a move).
 *
 * @module
 */
import { acquireLock } from "../core/store/lock.ts";
import { finishInterruptedMove } from "../core/projects/move.ts";
import type { Context } from "./context.ts";

/**
 * Runs `work` holding the store lock, recorded as `virtdev <what>`. With
 * `waitSeconds`, waits that long for a holder to finish before failing.
 */
export async function withLock<T>(
  context: Context,
  what: string,
  work: () => Promise<T>,
  options: { readonly waitSeconds?: number } = {},
): Promise<T> {
  using _lock = await acquireLock(context.store, what, options);
  const moved = await finishInterruptedMove(context.store, { configDir: context.config.configDir });
  if (moved) context.ui.warn(`finished moving ${moved.from} to ${moved.to}, which was cut short.`);
  return await work();
}
