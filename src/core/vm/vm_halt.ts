/**
 * A VM that QEMU stopped running: the run states QEMU reports after a
 * `STOP` event, what each means for a person, and whether the host agent
 * ends QEMU for it. Kept in the agent's state while QEMU lives, and in the
 * project's `halt.json` once it has ended, until the next start.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { type ProjectPaths, readOptionalText } from "../store/store.ts";
import type { QmpClient } from "./qmp.ts";

/** Why a VM stopped running. */
export interface VmHalt {
  /** QEMU's run state (`query-status`): `internal-error`, `guest-panicked`, `io-error`, `paused`, … */
  readonly state: string;
  /** What it means, for people. */
  readonly reason: string;
  /** Whether the agent ends QEMU for it (the guest cannot go on). */
  readonly ends: boolean;
  /** When it was seen (ISO 8601, UTC). */
  readonly at: string;
}

/** How a run state is told and handled; `undefined` for states in which the guest runs. */
export function haltFor(state: string, now = new Date()): VmHalt | undefined {
  const at = now.toISOString();
  switch (state) {
    case "running":
    case "prelaunch":
    case "inmigrate":
    case "postmigrate":
    case "finish-migrate":
    case "save-vm":
    case "restore-vm":
    case "suspended":
    // A power-off the maintenance VM pauses on: its shutdown proof tells of it.
    case "shutdown":
      return undefined;
    case "internal-error":
      return { state, reason: "the hypervisor stopped the guest with an internal error", ends: true, at };
    case "guest-panicked":
      return { state, reason: "the guest kernel panicked", ends: true, at };
    case "io-error":
      return { state, reason: "a disk write failed (host disk full?)", ends: false, at };
    case "paused":
      return { state, reason: "paused through the monitor", ends: false, at };
    default:
      return { state, reason: `QEMU's run state is ${state}`, ends: false, at };
  }
}

/** The halt a `STOP` event meant, asked of QEMU (`query-status`); `undefined` while the guest runs. */
export async function haltAfterStop(client: QmpClient): Promise<VmHalt | undefined> {
  const status = await client.execute("query-status").catch(() => undefined) as { status?: unknown } | undefined;
  return typeof status?.status === "string" ? haltFor(status.status) : undefined;
}

/** What a person can do about `halt` of project `project`. */
export function haltHints(halt: VmHalt, project: string): string[] {
  switch (halt.state) {
    case "internal-error":
      return [
        "KVM could not run this guest here (some nested hosts run SeaBIOS but not UEFI firmware): VIRTDEV_ACCEL=tcg runs it without KVM.",
        `The console's last lines are in 'virtdev log ${project}'.`,
      ];
    case "guest-panicked":
      return [`The console's last lines are in 'virtdev log ${project}'; 'virtdev start ${project}' boots it again.`];
    case "io-error":
      return [
        `QEMU keeps the guest paused, its data intact. Free space on the disk that holds ${project}'s images, then 'virtdev start ${project}' resumes it.`,
      ];
    default:
      return [`'virtdev monitor ${project}' and 'cont' resume it.`];
  }
}

/** Keeps `halt` as the last boot's end. */
export async function writeHaltRecord(paths: ProjectPaths, halt: VmHalt): Promise<void> {
  await writeFileAtomic(paths.haltRecord, `${JSON.stringify(halt)}\n`);
}

/** The last boot's halt, if QEMU stopped it. */
export async function readHaltRecord(paths: ProjectPaths): Promise<VmHalt | undefined> {
  const text = await readOptionalText(paths.haltRecord);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as VmHalt;
    return typeof value.state === "string" && typeof value.reason === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Forgets the last boot's halt (a new boot begins). */
export async function clearHaltRecord(paths: ProjectPaths): Promise<void> {
  await Deno.remove(paths.haltRecord).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}
