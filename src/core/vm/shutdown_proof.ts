/**
 * Proof of how a VM ended, for the maintenance VM whose disks become the
 * base only after a clean, guest-initiated power-off. The host agent
 * watches QEMU's events on a QMP socket of its own and writes what it saw
 * to `shutdown.json` beside the runtime directory; `maintain` judges it.
 *
 * QEMU runs with `-no-shutdown` (a guest power-off pauses it, and the agent
 * then sends `quit`, so QEMU exits 0 after it has reported the shutdown)
 * and `-action panic=pause` with a pvpanic device, so a kernel panic is an
 * event and never looks like a power-off. The host's own ACPI power button
 * (`virtdev stop`) shows as a `POWERDOWN` event before the guest's
 * `SHUTDOWN`, so an abort is told apart from a power-off the guest chose.
 *
 * @module
 */
import { writeFileAtomic } from "../store/atomic_write.ts";
import { readOptionalText } from "../store/store.ts";
import type { QmpEvent } from "./qmp.ts";

/** What the agent is asked to watch for: set in the runtime record of the maintenance VM. */
export interface ShutdownWatch {
  /** Names this boot, so that a proof left by an earlier boot never counts. */
  readonly token: string;
}

/** What the agent saw of one boot's end. */
export interface ShutdownProof {
  readonly token: string;
  /** The guest powered itself off (`SHUTDOWN` with `guest: true` and reason `guest-shutdown`). */
  readonly guestShutdown: boolean;
  /** The host pressed the ACPI power button (`POWERDOWN`): `virtdev stop`, an abort. */
  readonly hostPowerdown: boolean;
  /** The guest kernel panicked (`GUEST_PANICKED`). */
  readonly panicked: boolean;
  /** QEMU's exit code, once it has exited (128 + signal when killed). */
  readonly qemuExit?: number;
  /** The last events seen, for the message. */
  readonly events: readonly string[];
}

/** A fresh proof for the boot named `token`. */
export function emptyProof(token: string): ShutdownProof {
  return { token, guestShutdown: false, hostPowerdown: false, panicked: false, events: [] };
}

/** The events kept in a proof; a guest that reboots in a loop cannot grow it. */
const _keptEvents = 16;

/** The proof after `event`. */
export function withEvent(proof: ShutdownProof, event: QmpEvent): ShutdownProof {
  const data = event.data ?? {};
  const shown = event.event === "SHUTDOWN"
    ? `SHUTDOWN(${String(data.reason)}, guest=${String(data.guest)})`
    : event.event;
  const events = [...proof.events, shown].slice(-_keptEvents);
  switch (event.event) {
    case "SHUTDOWN":
      return {
        ...proof,
        events,
        guestShutdown: proof.guestShutdown || (data.guest === true && data.reason === "guest-shutdown"),
      };
    case "POWERDOWN":
      return { ...proof, events, hostPowerdown: true };
    case "GUEST_PANICKED":
      return { ...proof, events, panicked: true };
    default:
      return { ...proof, events };
  }
}

/** Whether `event` ends the boot: the agent then sends `quit`. */
export function endsBoot(event: QmpEvent): boolean {
  return event.event === "SHUTDOWN" || event.event === "GUEST_PANICKED";
}

/** How a boot ended, judged from its proof. */
export type ShutdownVerdict =
  | { readonly clean: true }
  | { readonly clean: false; readonly why: "aborted" | "panicked" | "killed" | "unproven"; readonly detail: string };

/**
 * Judges a proof: clean only when the guest powered itself off, the host
 * never pressed the power button, nothing panicked and QEMU exited 0.
 */
export function judgeShutdown(proof: ShutdownProof | undefined, token: string): ShutdownVerdict {
  if (proof === undefined || proof.token !== token) {
    return { clean: false, why: "unproven", detail: "no record of how the VM ended" };
  }
  const seen = proof.events.length ? ` (QMP events: ${proof.events.join(", ")})` : " (no QMP events)";
  if (proof.panicked) return { clean: false, why: "panicked", detail: `the guest kernel panicked${seen}` };
  if (proof.hostPowerdown) {
    return { clean: false, why: "aborted", detail: `the power-off came from the host (virtdev stop)${seen}` };
  }
  if (proof.qemuExit !== 0) {
    const exit = proof.qemuExit === undefined ? "no exit recorded" : `QEMU exit ${proof.qemuExit}`;
    return { clean: false, why: "killed", detail: `QEMU ended without a guest power-off: ${exit}${seen}` };
  }
  if (!proof.guestShutdown) {
    return { clean: false, why: "unproven", detail: `QEMU exited without a guest power-off${seen}` };
  }
  return { clean: true };
}

/** Reads a proof, if a well-formed one is there. */
export async function readShutdownProof(path: string): Promise<ShutdownProof | undefined> {
  const text = await readOptionalText(path);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as ShutdownProof;
    return typeof value.token === "string" && Array.isArray(value.events) ? value : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** Writes a proof atomically. */
export async function writeShutdownProof(path: string, proof: ShutdownProof): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(proof)}\n`);
}
