/**
 * The man page, virtdev(1), rendered from the same command definitions as
 * `--help`: no second copy of any text.
 *
 * @module
 */
import { brief, footer, programName } from "./program.ts";
import { colorOption, type CommandSyntax, type OptionSpec, type PositionalSpec } from "./spec.ts";

/**
 * One command's synopsis: `virtdev backup [-v|--verbose] [--keep N] PROJECT`;
 * help joins an option's names with `/` instead.
 */
export function synopsis(command: CommandSyntax, options: { readonly between?: "|" | "/" } = {}): string {
  const words = [programName, command.name];
  for (const spec of [...Object.values(command.options), colorOption]) {
    words.push(`[${_optionUsage(spec, options.between ?? "|")}]`);
  }
  for (const spec of Object.values(command.positionals)) words.push(_positionalUsage(spec));
  return words.join(" ");
}

function _optionUsage(spec: OptionSpec, between = "|"): string {
  const names = spec.names.join(between);
  return spec.kind === "flag" ? names : `${names} ${spec.metavar}`;
}

function _positionalUsage(spec: PositionalSpec): string {
  if (spec.variadic) return `[${spec.metavar}...]`;
  return spec.optional ? `[${spec.metavar}]` : spec.metavar;
}

/** Escapes text for troff: backslashes, and a leading dot or quote that would read as a request. */
function _escape(text: string): string {
  return text.replaceAll("\\", "\\e").replaceAll("-", "\\-").replace(/^([.'])/, "\\&$1");
}

/** Renders virtdev(1) for `commands`. */
export function renderManPage(
  commands: readonly CommandSyntax[],
  options: { readonly version: string; readonly date: string },
): string {
  const lines = [
    `.TH VIRTDEV 1 "${options.date}" "virtdev ${options.version}" "User Commands"`,
    ".SH NAME",
    `virtdev \\- ${_escape(brief.replace(/\.$/, ""))}`,
    ".SH SYNOPSIS",
    ".B virtdev",
    ".I command",
    ".RI [ options ]",
    ".br",
    ".BI virtdev\\- command",
    ".RI [ options ]",
    ".SH DESCRIPTION",
    _escape(
      "Each project runs in a virtual machine of its own: two thin qcow2 deltas over a sealed, read-only base, " +
        "reachable by SSH on a loopback port. A link named virtdev-<command> to the binary runs that command.",
    ),
    ".SH COMMANDS",
  ];
  for (const command of commands) {
    lines.push(`.SS ${command.name}`, ".nf", _escape(synopsis(command)), ".fi", _escape(command.brief));
    if (command.description && command.description !== command.brief) lines.push(".PP", _escape(command.description));
    for (const spec of Object.values(command.options)) {
      lines.push(".TP", `.B ${_escape(_optionUsage(spec))}`, _escape(spec.description));
    }
    for (const spec of Object.values(command.positionals)) {
      if (spec.description) lines.push(".TP", `.I ${_escape(spec.metavar)}`, _escape(spec.description));
    }
  }
  lines.push(
    ".SH OPTIONS",
    "Every command takes:",
    ".TP",
    `.B ${_escape(_optionUsage(colorOption))}`,
    _escape(colorOption.description),
    ".SH EXIT STATUS",
    _escape("0 on success; 64 for a malformed command line; each command's own codes are listed in the README."),
    ".SH SEE ALSO",
    _escape(footer),
    "",
  );
  return lines.join("\n");
}
