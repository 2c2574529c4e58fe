/**
 * The full parser: Optique, built from the commands' syntax. It answers
 * what the fast parser declines: `--help`, `help <command>`, completion,
 * and every malformed line (exit 64 with a message and a hint). Loaded only
 * then, because the library costs more to load than most commands take to
 * run.
 *
 * @module
 */
import { object, or } from "@optique/core/constructs";
import { type Message, text } from "@optique/core/message";
import { map, multiple, optional, withDefault } from "@optique/core/modifiers";
import type { Parser, Suggestion } from "@optique/core/parser";
import { argument, command as optiqueCommand, flag, option } from "@optique/core/primitives";
import { choice, integer, string, type ValueParser } from "@optique/core/valueparser";
import type { NonEmptyString } from "@optique/core/nonempty";
import type { OptionName } from "@optique/core/usage";
import { run } from "@optique/run";
import { loadConfig, processEnvironment } from "../core/store/config.ts";
import { isProjectEntryName } from "../core/store/store.ts";
import type { Io } from "../ui/io.ts";
import type { ColorMode } from "../ui/color.ts";
import {
  colorOption,
  type Command,
  type Invocation,
  type OptionSpec,
  type ParsedValues,
  type PositionalSpec,
  type ValueSpec,
} from "./spec.ts";
import { brief, footer, programName } from "./program.ts";

/** How the full parser ended a line it did not turn into an invocation. */
export interface ParseExit {
  /** 0 after help or completion; 64 for a usage error, already reported. */
  readonly exitCode: number;
}

// Completion is synchronous, so this is Store.listProjects() without await.
function _projectNames(): string[] {
  try {
    const { home } = loadConfig(processEnvironment());
    const names: string[] = [];
    for (const entry of Deno.readDirSync(`${home}/projects`)) {
      if (entry.isDirectory && isProjectEntryName(entry.name)) names.push(entry.name);
    }
    return names.sort();
  } catch {
    return [];
  }
}

/** A value parser for project names that completes existing projects. */
function _projectName(): ValueParser<"sync", string> {
  return {
    mode: "sync",
    metavar: "PROJECT",
    placeholder: "",
    parse: (input) => ({ success: true, value: input }),
    format: (value) => value,
    *suggest(prefix: string): Iterable<Suggestion> {
      for (const name of _projectNames()) {
        if (name.startsWith(prefix)) yield { kind: "literal", text: name };
      }
    },
  };
}

function _message(words: string): Message {
  return [text(words)];
}

function _valueParser(spec: ValueSpec, metavar: string): ValueParser<"sync", unknown> {
  const named = { metavar: metavar as NonEmptyString };
  if (spec.type === "choice") return choice(spec.choices, named);
  if (spec.type === "integer") return integer({ ...named, min: spec.min, max: spec.max });
  return string(named);
}

function _option(spec: OptionSpec): Parser<"sync", unknown, unknown> {
  // The syntax's names are checked to start with '-' (cli_parse_test.ts).
  const [first, ...rest] = spec.names as readonly OptionName[];
  const description = { description: _message(spec.description) };
  if (spec.kind === "flag") return withDefault(flag(first, ...rest, description), false);
  const parser = _valueParser(spec.value ?? { type: "string" }, spec.metavar);
  return optional(option(first, ...rest, parser, description));
}

function _positional(spec: PositionalSpec): Parser<"sync", unknown, unknown> {
  const named = { metavar: spec.metavar as NonEmptyString };
  const values = spec.project ? _projectName() : spec.choices ? choice(spec.choices, named) : string(named);
  const parser = argument(values, spec.description ? { description: _message(spec.description) } : {});
  if (spec.variadic) return map(multiple(parser), (words) => [...words]);
  return spec.optional ? optional(parser) : parser;
}

/** The Optique parser of `command`, producing its invocation. */
export function commandParser(command: Command): Parser<"sync", Invocation, unknown> {
  const fields: Record<string, Parser<"sync", unknown, unknown>> = {};
  for (const [key, spec] of Object.entries(command.options)) fields[key] = _option(spec);
  for (const [key, spec] of Object.entries(command.positionals)) fields[key] = _positional(spec);
  const parser = map(
    object({ args: object(fields), color: withDefault(_option(colorOption), "auto") }),
    (parsed): Invocation => ({
      command,
      values: parsed.args as ParsedValues,
      color: (parsed.color ?? "auto") as ColorMode,
    }),
  );
  return optiqueCommand(command.name, parser, {
    brief: _message(command.brief),
    description: _message(command.description ?? command.brief),
  });
}

class _Exit {
  constructor(readonly code: number) {}
}

class _ParseFailure {
  constructor(readonly text: string) {}
}

/**
 * Parses `args` with Optique over all `commands`: an invocation, or how
 * the line was answered (help, completion, a reported usage error).
 */
export function parseFull(
  commands: readonly Command[],
  args: readonly string[],
  options: { readonly io: Io; readonly version: string },
): Invocation | ParseExit {
  const { io } = options;
  const parser = or(...commands.map(commandParser));
  let parsed = _parse(parser, args, options);
  if (parsed instanceof _ParseFailure) {
    // A dash token where a project name belongs is reported as the invalid
    // name it is (exit 2), not as an unknown option.
    const retry = _asProjectName(args, parsed.text, commands);
    if (retry) {
      const second = _parse(parser, retry, options);
      if (!(second instanceof _ParseFailure)) parsed = second;
    }
  }
  if (parsed instanceof _Exit) return { exitCode: parsed.code };
  if (parsed instanceof _ParseFailure) {
    const command = commands.find((spec) => spec.name === args[0]);
    const reason = parsed.text.replace(/^Error:\s*/, "").trim();
    io.err(`${programName}: ${reason}\n`);
    io.err(`hint: see '${programName} help${command ? ` ${command.name}` : ""}'.\n`);
    return { exitCode: usageExitCode };
  }
  return parsed;
}

/** The exit code of a malformed command line. */
export const usageExitCode = 64;

function _parse(
  parser: Parser<"sync", Invocation, unknown>,
  args: readonly string[],
  options: { readonly io: Io; readonly version: string },
): Invocation | _Exit | _ParseFailure {
  let errorText = "";
  try {
    return run(parser, {
      programName,
      args,
      stdout: (output) => options.io.out(`${output}\n`),
      stderr: (output) => {
        errorText += `${output}\n`;
      },
      onExit: (code) => {
        throw new _Exit(code);
      },
      help: "both",
      version: { value: options.version, option: true },
      completion: "command",
      errorExitCode: usageExitCode,
      aboveError: "none",
      colors: false,
      brief: _message(brief),
      footer: _message(footer),
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
  commands: readonly Command[],
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
