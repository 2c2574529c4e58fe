/**
 * Runs a piece of work under the store lock.
 *
 * @module
 */
import { acquireLock } from "../core/store/lock.ts";
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
  return await work();
}
