/**
 * A project's forwards: TCP ports of the guest made reachable on the
 * host's 127.0.0.1 (never another address), kept in
 * `projects/<p>/forwards.json` and set up by the host agent at every start
 * and whenever `virtdev forward` changes them while the VM runs.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { VirtdevError } from "../store/errors.ts";
import { type ProjectPaths, readOptionalText } from "../store/store.ts";

/** One forward: host loopback port → guest port. */
export interface Forward {
  readonly host: number;
  readonly guest: number;
}

/** What the agent says of a forward. */
export interface ForwardState extends Forward {
  /** `up` once it answers; `starting`; `retrying` after its connection dropped; `failed` with `error`. */
  readonly state: "starting" | "up" | "retrying" | "failed";
  readonly error?: string;
}

/** Exit codes of `forward`. */
export const ForwardExit = {
  notRunning: 4,
  exists: 6,
  invalid: 7,
  hostPortBusy: 8,
  failed: 9,
  missing: 10,
} as const;

/**
 * Parses `[HOSTPORT:]GUESTPORT`; the host port defaults to the guest's.
 *
 * @throws {VirtdevError} exit 7 for anything else, or a host port below 1024.
 */
export function parseForwardSpec(spec: string): Forward {
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(spec);
  const guest = Number(match?.[2]);
  const host = match?.[1] === undefined ? guest : Number(match[1]);
  if (!match || !(guest >= 1 && guest <= 65535) || !(host >= 1024 && host <= 65535)) {
    throw new VirtdevError(`Invalid forward: '${spec}'.`, {
      exitCode: ForwardExit.invalid,
      hint: "Give [HOSTPORT:]GUESTPORT, e.g. 8000 or 18000:8000; host ports are 1024-65535.",
    });
  }
  return { host, guest };
}

/** The project's kept forwards, in host-port order. */
export async function readForwards(paths: ProjectPaths): Promise<Forward[]> {
  const text = await readOptionalText(paths.forwards);
  if (text === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    value = undefined;
  }
  const valid = (item: unknown): item is Forward =>
    typeof item === "object" && item !== null && Number.isInteger((item as Forward).host) &&
    Number.isInteger((item as Forward).guest);
  if (!Array.isArray(value) || !value.every(valid)) {
    throw new VirtdevError(`The forwards of ${paths.name} are unreadable: ${paths.forwards}.`, {
      exitCode: 70,
      hint: `Remove the file and add them again with 'virtdev forward ${paths.name} …'.`,
    });
  }
  return value.map(({ host, guest }) => ({ host, guest })).sort((a, b) => a.host - b.host);
}

/** Keeps `forwards` for the project. */
export async function writeForwards(paths: ProjectPaths, forwards: readonly Forward[]): Promise<void> {
  const sorted = [...forwards].sort((a, b) => a.host - b.host);
  await writeFileAtomic(paths.forwards, `${JSON.stringify(sorted)}\n`);
}

/** `127.0.0.1:18000 → guest 8000`. */
export function describeForward(forward: Forward): string {
  return `127.0.0.1:${forward.host} → guest port ${forward.guest}`;
}
