/**
 * Help as text, rendered from the commands' syntax: the program's page
 * (`virtdev --help`) and each command's (`virtdev help <command>`). The
 * pages are rendered ahead of time into `help_pages.ts`, so that asking
 * for help loads neither the commands nor the CLI library.
 *
 * @module
 */
import { synopsis } from "./man_page.ts";
import { brief, footer } from "./program.ts";
import { colorOption, type CommandSyntax, type OptionSpec, type PositionalSpec } from "./spec.ts";

/** Where the descriptions of an option list begin. */
const _column = 30;
/** The width paragraphs are wrapped to. */
const _width = 80;

/** Entries the full parser adds to the program's own: shown in the command list too. */
const _builtins: readonly (readonly [string, string])[] = [
  ["help", "Show help: virtdev help <command>."],
  ["completion", "Print a shell completion script: virtdev completion bash|zsh|fish."],
];

/** The page of `virtdev --help`. */
export function renderProgramHelp(commands: readonly CommandSyntax[]): string {
  const lines = [..._wrap(brief, 0), ""];
  commands.forEach((command, index) => lines.push(`${index === 0 ? "Usage: " : "       "}${_usage(command)}`));
  lines.push("", "Commands:");
  for (const command of commands) lines.push(..._entry(command.name, command.brief));
  for (const [name, text] of _builtins) lines.push(..._entry(name, text));
  lines.push("", "Options:");
  lines.push(..._entry("--help", "Show help information."));
  lines.push(..._entry("--version", "Show version information."));
  lines.push("", ..._wrap(footer, 0));
  return `${lines.join("\n")}\n`;
}

/** The page of `virtdev help <command>` and `virtdev <command> --help`. */
export function renderCommandHelp(command: CommandSyntax): string {
  const lines = [command.brief, `Usage: ${_usage(command)}`, ""];
  lines.push(..._wrap(command.description ?? command.brief, 0), "");
  for (const spec of [...Object.values(command.options), colorOption]) {
    lines.push(..._entry(_optionLabel(spec), spec.description));
  }
  for (const spec of Object.values(command.positionals)) {
    lines.push(..._entry(_positionalLabel(spec), spec.description ?? ""));
  }
  lines.push("", ..._wrap(footer, 0));
  return `${lines.join("\n")}\n`;
}

/** The synopsis as help shows it: `-y/--yes` rather than the man page's `-y|--yes`. */
function _usage(command: CommandSyntax): string {
  return synopsis(command, { between: "/" });
}

function _optionLabel(spec: OptionSpec): string {
  const names = spec.names.join(", ");
  return spec.kind === "flag" ? names : `${names} ${spec.metavar}`;
}

function _positionalLabel(spec: PositionalSpec): string {
  return spec.variadic ? `${spec.metavar}...` : spec.metavar;
}

/** One entry of a list: the label, then its text wrapped beside it. */
function _entry(label: string, text: string): string[] {
  const head = `  ${label}`;
  const body = _wrap(text, _column);
  if (head.length + 2 > _column) return [head, ...body];
  const [first = "", ...rest] = body;
  return [`${head.padEnd(_column)}${first.trimStart()}`, ...rest];
}

/** `text` wrapped to {@link _width} columns, each line indented by `indent`. */
function _wrap(text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && indent + line.length + 1 + word.length > _width) {
      lines.push(" ".repeat(indent) + line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(" ".repeat(indent) + line);
  return lines;
}
