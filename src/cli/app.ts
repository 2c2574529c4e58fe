/**
 * The command line: parses arguments, runs the chosen command, and turns
 * every failure into `virtdev: <message>`, hints, and an exit code.
 *
 * Help comes from pages rendered ahead of time (`help_pages.ts`). A
 * well-formed line is read by the fast parser from the command's own
 * syntax, loading only that command; anything else (completion, a usage
 * error, help among other words) goes to the full parser, which loads
 * Optique and every command.
 *
 * @module
 */
import type { Environment } from "../core/store/config.ts";
import { ExitCode, VirtdevError } from "../core/store/errors.ts";
import { type Io, Ui } from "../ui/io.ts";
import { commandNames, isCommandName, loadAllCommands, loadCommand } from "./commands.ts";
import { Context } from "./context.ts";
import { parseFast } from "./fast_parse.ts";
import { helpRequest } from "./help_request.ts";
import { programName } from "./program.ts";
import type { Invocation } from "./spec.ts";

export { programName };

/** Options for {@link runCli}. */
export interface RunCliOptions {
  /** Streams to use. */
  readonly io: Io;
  /** Environment variables. */
  readonly env: Environment;
  /** The version shown by `--version`. */
  readonly version: string;
}

/**
 * Runs one virtdev command line.
 *
 * @returns the exit code.
 */
export async function runCli(args: readonly string[], options: RunCliOptions): Promise<number> {
  const { io, env } = options;
  if (args.length === 0) {
    io.err(_shortUsage());
    return ExitCode.usage;
  }
  if (args.length === 1 && args[0] === "--version") {
    io.out(`${options.version}\n`);
    return 0;
  }
  const help = helpRequest(args);
  if (help) {
    const { programHelp, commandHelp } = await import("./help_pages.ts");
    const page = help.page === "program" ? programHelp : commandHelp[help.name];
    if (page !== undefined) {
      io.out(page);
      return 0;
    }
  }
  let invocation: Invocation | undefined;
  if (isCommandName(args[0])) {
    const command = await loadCommand(args[0]);
    const fast = parseFast(command, args.slice(1));
    if (fast) invocation = { command, values: fast.values, color: fast.color };
  }
  if (invocation === undefined) {
    const { parseFull } = await import("./full_parse.ts");
    const parsed = parseFull(await loadAllCommands(), args, { io, version: options.version });
    if ("exitCode" in parsed) return parsed.exitCode;
    invocation = parsed;
  }

  const ui = new Ui(io, { color: invocation.color, env });
  const context = new Context(ui, env);
  try {
    return (await invocation.command.run(invocation.values, context)) ?? 0;
  } catch (error) {
    return reportError(error, ui);
  }
}

/** Prints `error` as `virtdev: <message>` with its hints; returns the exit code. */
export function reportError(error: unknown, ui: Ui): number {
  // Messages quote tools and guests (rsync's and ssh's stderr): the Ui
  // removes their control sequences.
  if (error instanceof VirtdevError) {
    ui.error(programName, error.message);
    for (const hint of error.hints) ui.hint(hint);
    return error.exitCode;
  }
  if (error instanceof Deno.errors.NotCapable) {
    ui.error(programName, `not permitted: ${error.message}`);
    ui.hint("this build of virtdev may not touch that path; check VIRTDEV_HOME and the deno task flags.");
    return ExitCode.toolFailed;
  }
  const text = error instanceof Error ? error.message : String(error);
  ui.error(programName, `unexpected error: ${text}`);
  if (ui.debug && error instanceof Error && error.stack) ui.info(error.stack);
  else ui.hint("set VIRTDEV_DEBUG=1 for a stack trace, and report it if it looks like a bug.");
  return ExitCode.toolFailed;
}

function _shortUsage(): string {
  const names = [...commandNames].sort();
  return [
    `usage: ${programName} <command> [<args>]`,
    `       ${programName} help <command>`,
    "",
    `commands: ${names.join(", ")}`,
    `Run '${programName} --help' for details.`,
    "",
  ].join("\n");
}
