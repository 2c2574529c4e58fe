/**
 * The blocked log: each attempt the filter dropped, counted per
 * destination and written at most once a second, in a file capped like
 * the console log. `net --log` reads it back.
 *
 * @module
 */
import { CappedLog, readFileTail } from "../console_log.ts";
import type { BlockedAttempt } from "./egress_filter.ts";

/** The most bytes the log keeps, both halves together. */
export const blockedLogBytes = 512 * 1024;
/** The most destinations counted between two writes; the rest are counted together. */
const _maxPending = 1024;

/** One line of the log: attempts at one destination within one second or so. */
export interface BlockedEntry extends BlockedAttempt {
  /** When the first of them was seen (ISO 8601). */
  readonly time: string;
  readonly count: number;
}

/** Counts attempts and writes them out. */
export class BlockedCounter {
  readonly #log: CappedLog;
  readonly #pending = new Map<string, { attempt: BlockedAttempt; time: string; count: number }>();
  #total = 0;

  private constructor(log: CappedLog) {
    this.#log = log;
  }

  /** Opens the log at `path` (the last boot's becomes its older half). */
  static async open(path: string): Promise<BlockedCounter> {
    return new BlockedCounter(await CappedLog.create(path, { maxBytes: blockedLogBytes }));
  }

  /** Every attempt counted since the start. */
  get total(): number {
    return this.#total;
  }

  /** Counts one attempt. */
  add(attempt: BlockedAttempt): void {
    this.#total++;
    let key = `${attempt.protocol}|${attempt.target}|${attempt.port}|${attempt.name}|${attempt.rule}`;
    if (!this.#pending.has(key) && this.#pending.size >= _maxPending) key = "(more)";
    const entry = this.#pending.get(key);
    if (entry) entry.count++;
    else {
      const shown = key === "(more)"
        ? { protocol: "any", target: "(more destinations than the log counts apart)", rule: "any" }
        : attempt;
      this.#pending.set(key, { attempt: shown, time: new Date().toISOString(), count: 1 });
    }
  }

  /** Writes what was counted since the last call. */
  async flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const lines = [...this.#pending.values()].map(({ attempt, time, count }) =>
      JSON.stringify({ time, count, ...attempt })
    );
    this.#pending.clear();
    await this.#log.write(new TextEncoder().encode(`${lines.join("\n")}\n`));
  }

  /** Closes the file. */
  close(): void {
    this.#log.close();
  }
}

/** The log's lines, oldest first; lines that do not parse are skipped. */
export async function readBlockedLog(path: string): Promise<BlockedEntry[]> {
  const text = `${(await readFileTail(`${path}.1`, blockedLogBytes)) ?? ""}${
    (await readFileTail(path, blockedLogBytes)) ?? ""
  }`;
  return parseBlockedLines(text);
}

/** Parses log lines; anything that is not an entry is skipped. */
export function parseBlockedLines(text: string): BlockedEntry[] {
  const out: BlockedEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line);
      if (typeof entry.time === "string" && typeof entry.count === "number" && typeof entry.target === "string") {
        out.push({
          time: entry.time,
          count: entry.count,
          protocol: String(entry.protocol),
          target: entry.target,
          name: typeof entry.name === "string" ? entry.name : undefined,
          port: typeof entry.port === "number" ? entry.port : undefined,
          rule: String(entry.rule),
        });
      }
    } catch {
      // A line cut by rotation.
    }
  }
  return out;
}

/** Entries added up per destination: the first and last time, and how many. */
export function summarizeBlocked(
  entries: readonly BlockedEntry[],
): (BlockedEntry & { readonly last: string })[] {
  const byKey = new Map<string, BlockedEntry & { last: string }>();
  for (const entry of entries) {
    const key = `${entry.protocol}|${entry.target}|${entry.port}|${entry.name}`;
    const seen = byKey.get(key);
    if (seen) byKey.set(key, { ...seen, count: seen.count + entry.count, last: entry.time, rule: entry.rule });
    else byKey.set(key, { ...entry, last: entry.time });
  }
  return [...byKey.values()];
}
