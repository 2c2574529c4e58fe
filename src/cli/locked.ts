/**
 * Runs a piece of work under the store lock, after finishing whatever a
 * crash left half done that is finished under it (a move).
 *
 * @module
 */
import { acquireLock, type LockTaker } from "../core/store/lock.ts";
import { finishInterruptedMove } from "../core/projects/move.ts";
import type { Context } from "./context.ts";

/** The store lock as every mutating command takes it: see {@link LockTaker}. */
export function lockTaker(context: Context): LockTaker {
  return async (what, options = {}) => {
    const lock = await acquireLock(context.store, what, options);
    try {
      const moved = await finishInterruptedMove(context.store, { configDir: context.config.configDir });
      if (moved) context.ui.warn(`finished moving ${moved.from} to ${moved.to}, which was cut short.`);
    } catch (error) {
      lock.release();
      throw error;
    }
    return lock;
  };
}

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
  using _lock = await lockTaker(context)(what, options);
  return await work();
}
