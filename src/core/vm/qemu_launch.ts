/**
 * The command the host agent runs to start QEMU from a launch record.
 *
 * A resume's QEMU reads its saved state from a descriptor (`-incoming
 * fd:3`), not through a pipe from `cat`: the pipe cost a resume about a
 * third of its load (0.12 s of 0.47 s for a 250 MiB state under TCG), and
 * QEMU 7.2 has no `file:` URI to read the file itself. Deno cannot hand a
 * child a descriptor beyond stdio, so `sh` opens the state on fd 3
 * and then becomes QEMU. Its script is a constant: the path and QEMU's
 * arguments reach it as arguments, never as script text.
 *
 * @module
 */

/** The descriptor a resuming QEMU reads its state from. */
export const incomingStateFd = 3;

const _openStateThenExec = `exec ${incomingStateFd}<"$1" || exit 126; shift; exec "$@"`;

/** QEMU as a launch record holds it. */
export interface QemuCommand {
  readonly program: string;
  readonly args: readonly string[];
  /** The suspended state to load on {@link incomingStateFd}: its args say `-incoming fd:3`. */
  readonly incoming?: string;
}

/** The program and arguments that start `qemu`, with `extraArgs` after its own. */
export function qemuLaunchCommand(
  qemu: QemuCommand,
  extraArgs: readonly string[] = [],
): { readonly program: string; readonly args: readonly string[] } {
  const args = [...qemu.args, ...extraArgs];
  if (qemu.incoming === undefined) return { program: qemu.program, args };
  return { program: "sh", args: ["-c", _openStateThenExec, "sh", qemu.incoming, qemu.program, ...args] };
}
