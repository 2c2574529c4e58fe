/**
 * The fast parser: reads a well-formed command line straight from a
 * command's syntax, without loading the CLI library. It accepts only what
 * it is sure of (known options, the right number of positionals, valid
 * values) and declines everything else: help, unknown or repeated
 * options, bundled short options, a missing value. A declined line goes to
 * the full parser, which answers it (help, completion, or a usage error
 * with exit 64). Where both accept a line they agree (`cli_parse_test.ts`).
 *
 * @module
 */
import { colorOption, type CommandSyntax, type OptionSpec, type ParsedValues, type ValueSpec } from "./spec.ts";
import type { ColorMode } from "../ui/color.ts";

/** What the fast parser made of a command line it accepted. */
export interface FastParse {
  readonly values: ParsedValues;
  readonly color: ColorMode;
}

/**
 * Parses `args` (the words after the command name) against `syntax`, or
 * returns `undefined` to leave the line to the full parser.
 */
export function parseFast(syntax: CommandSyntax, args: readonly string[]): FastParse | undefined {
  const byName = new Map<string, { key: string; spec: OptionSpec }>();
  for (const [key, spec] of Object.entries(syntax.options)) {
    for (const name of spec.names) byName.set(name, { key, spec });
  }
  for (const name of colorOption.names) byName.set(name, { key: "\0color", spec: colorOption });

  const values: Record<string, unknown> = {};
  const words: string[] = [];
  let optionsEnded = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (optionsEnded || !arg.startsWith("-")) {
      words.push(arg);
      continue;
    }
    if (arg === "--") {
      optionsEnded = true;
      continue;
    }
    const equals = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = equals === -1 ? arg : arg.slice(0, equals);
    const option = byName.get(name);
    if (option === undefined || option.key in values) return undefined;
    if (option.spec.kind === "flag") {
      if (equals !== -1) return undefined;
      values[option.key] = true;
      continue;
    }
    let text: string;
    if (equals !== -1) {
      text = arg.slice(equals + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("-")) return undefined;
      text = next;
      i++;
    }
    const value = _readValue(option.spec.value ?? { type: "string" }, text);
    if (value === undefined) return undefined;
    values[option.key] = value;
  }

  const result: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(syntax.options)) {
    result[key] = key in values ? values[key] : spec.kind === "flag" ? false : undefined;
  }
  if (!_assignPositionals(syntax, words, result)) return undefined;
  const color = (values["\0color"] as ColorMode | undefined) ?? "auto";
  return { values: result, color };
}

function _readValue(spec: ValueSpec, text: string): string | number | undefined {
  if (text === "") return undefined;
  if (spec.type === "choice") return spec.choices.includes(text) ? text : undefined;
  if (spec.type === "integer") {
    if (!/^-?\d+$/.test(text)) return undefined;
    const number = Number(text);
    if (!Number.isSafeInteger(number)) return undefined;
    if (spec.min !== undefined && number < spec.min) return undefined;
    if (spec.max !== undefined && number > spec.max) return undefined;
    return number;
  }
  return text;
}

function _assignPositionals(syntax: CommandSyntax, words: string[], result: Record<string, unknown>): boolean {
  const specs = Object.entries(syntax.positionals);
  const required = specs.filter(([, spec]) => !spec.optional && !spec.variadic).length;
  if (words.length < required) return false;
  let index = 0;
  let optionalLeft = words.length - required;
  for (const [key, spec] of specs) {
    if (spec.variadic) {
      result[key] = words.slice(index);
      index = words.length;
      continue;
    }
    if (spec.optional) {
      if (optionalLeft === 0 || index >= words.length) {
        result[key] = undefined;
        continue;
      }
      optionalLeft--;
    }
    const word = words[index++];
    if (word === "" || (spec.choices && !spec.choices.includes(word))) return false;
    result[key] = word;
  }
  return index === words.length;
}
