/**
 * The command line: parses arguments with Optique, runs the chosen command,
 * and turns every failure into `virtdev: <message>`, hints, and an exit code.
 *
 * @module
 */
import { or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { run } from "@optique/run";
import type { Environment } from "../core/store/config.ts";
import { ExitCode, VirtdevError } from "../core/store/errors.ts";
import { type Io, Ui } from "../ui/io.ts";
import type { CommandSpec, Invocation } from "./command.ts";
import { Context } from "./context.ts";

/** The program name in help and messages. */
export const programName = "virtdev";

class _Exit {
  constructor(readonly code: number) {}
}

/** Options for {@link runCli}. */
export interface RunCliOptions {
  /** Streams to use. */
  readonly io: Io;
  /** Environment variables. */
  readonly env: Environment;
  /** The commands to offer. */
  readonly commands: readonly CommandSpec[];
  /** The version shown by `--version`. */
  readonly version: string;
}

/**
 * Runs one virtdev command line.
 *
 * @returns the exit code.
 */
export async function runCli(args: readonly string[], options: RunCliOptions): Promise<number> {
  const { io, env, commands } = options;
  if (args.length === 0) {
    io.err(_shortUsage(commands));
    return ExitCode.usage;
  }

  let parsed = _parse(args, options);
  if (parsed instanceof _ParseFailure) {
    // A dash token where a project name belongs is reported as the invalid
    // name it is (exit 2), not as an unknown option.
    const retry = _asProjectName(args, parsed.text, commands);
    if (retry) {
      const second = _parse(retry, options);
      if (!(second instanceof _ParseFailure)) parsed = second;
    }
  }
  if (parsed instanceof _Exit) return parsed.code;
  if (parsed instanceof _ParseFailure) {
    const command = commands.find((spec) => spec.name === args[0]);
    const text = parsed.text.replace(/^Error:\s*/, "").trim();
    io.err(`${programName}: ${text}\n`);
    io.err(`hint: see '${programName} help${command ? ` ${command.name}` : ""}'.\n`);
    return ExitCode.usage;
  }

  const ui = new Ui(io, { color: parsed.color, env });
  const context = new Context(ui, env);
  try {
    return await parsed.execute(context);
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

class _ParseFailure {
  constructor(readonly text: string) {}
}

function _parse(args: readonly string[], options: RunCliOptions): Invocation | _Exit | _ParseFailure {
  const { io, commands } = options;
  let errorText = "";
  const parser = or(...commands.map((spec) => spec.parser));
  try {
    return run(parser, {
      programName,
      args,
      stdout: (text) => io.out(`${text}\n`),
      stderr: (text) => {
        errorText += `${text}\n`;
      },
      onExit: (code) => {
        throw new _Exit(code);
      },
      help: "both",
      version: { value: options.version, option: true },
      completion: "command",
      errorExitCode: ExitCode.usage,
      aboveError: "none",
      colors: false,
      brief: message`One KVM/QEMU virtual machine per project: isolation with the convenience of a container.`,
      footer: message`Run 'virtdev help <command>' for a command's options. Exit codes are listed in the README.`,
    });
  } catch (thrown) {
    if (thrown instanceof _Exit) {
      return thrown.code === 0 ? thrown : new _ParseFailure(errorText);
    }
    throw thrown;
  }
}

function _asProjectName(
  args: readonly string[],
  errorText: string,
  commands: readonly CommandSpec[],
): string[] | undefined {
  const spec = commands.find((command) => command.name === args[0]);
  const token = /`(-[^`]*)`/.exec(errorText)?.[1];
  if (!spec?.takesProject || token === undefined || args.includes("--")) return undefined;
  const index = args.indexOf(token, 1);
  if (index === -1) return undefined;
  // Only where the project belongs: when another word could be the project,
  // the dash token is an unknown option, never a value.
  if (args.slice(1).some((word, i) => i + 1 !== index && !word.startsWith("-"))) return undefined;
  return [...args.slice(0, index), ...args.slice(index + 1), "--", token];
}

function _shortUsage(commands: readonly CommandSpec[]): string {
  const names = commands.map((spec) => spec.name).sort();
  return [
    `usage: ${programName} <command> [<args>]`,
    `       ${programName} help <command>`,
    "",
    `commands: ${names.join(", ")}`,
    `Run '${programName} --help' for details.`,
    "",
  ].join("\n");
}
