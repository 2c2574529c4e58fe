/**
 * How a command is declared: plain data (name, help text, options,
 * positionals) and a handler. The data is the one definition of the
 * command line: the fast parser reads it directly, and the help, errors,
 * completion (Optique) and the man page are generated from it. Nothing
 * here loads the CLI library, so that a command starts as fast as Deno
 * allows.
 *
 * @module
 */
import type { ColorMode } from "../ui/color.ts";
import type { Context } from "./context.ts";

/** The words an option answers to: `-v`, `--verbose`. */
export type OptionNames = readonly [string, ...string[]];

/** An option that is there or not. */
export interface FlagSpec {
  readonly kind: "flag";
  readonly names: OptionNames;
  readonly description: string;
}

/** What an option's or a positional's value may be. */
export type ValueSpec =
  | { readonly type: "string" }
  | { readonly type: "integer"; readonly min?: number; readonly max?: number }
  | { readonly type: "choice"; readonly choices: readonly string[] };

/** An option that takes a value: `--keep N`, `--keep=N`. */
export interface ValueOptionSpec {
  readonly kind: "value";
  readonly names: OptionNames;
  readonly metavar: string;
  readonly description: string;
  /** A string when left out. */
  readonly value?: ValueSpec;
}

/** An option of either kind. */
export type OptionSpec = FlagSpec | ValueOptionSpec;

/** A positional argument, in declaration order. */
export interface PositionalSpec {
  readonly metavar: string;
  readonly description?: string;
  /** Completes from the projects that exist. */
  readonly project?: boolean;
  readonly optional?: boolean;
  /** Takes every remaining word (a command line for the guest). */
  readonly variadic?: boolean;
  readonly choices?: readonly string[];
}

type _ChoiceOf<V> = V extends { readonly type: "choice"; readonly choices: readonly (infer C)[] } ? C
  : V extends { readonly type: "integer" } ? number
  : string;

/** The value an option parses to. */
export type OptionValue<O> = O extends FlagSpec ? boolean
  : O extends { readonly value: infer V } ? _ChoiceOf<V> | undefined
  : string | undefined;

/** The value a positional parses to. */
export type PositionalValue<P> = P extends { readonly variadic: true } ? string[]
  : P extends { readonly optional: true } ?
      | (P extends { readonly choices: readonly (infer C)[] } ? C : string)
      | undefined
  : P extends { readonly choices: readonly (infer C)[] } ? C
  : string;

/** The parsed values of a command's options and positionals, by key. */
export type CommandValues<
  O extends Readonly<Record<string, OptionSpec>>,
  P extends Readonly<Record<string, PositionalSpec>>,
> = { -readonly [K in keyof O]: OptionValue<O[K]> } & { -readonly [K in keyof P]: PositionalValue<P[K]> };

/** A command's command line, as data. */
export interface CommandSyntax {
  /** The command name, e.g. `create`. */
  readonly name: string;
  /** One line for the command list. */
  readonly brief: string;
  /** The paragraph of `help <command>`; the brief when absent. */
  readonly description?: string;
  /** Whether its first positional is a project name (a dash there is a bad name, exit 2). */
  readonly takesProject: boolean;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly positionals: Readonly<Record<string, PositionalSpec>>;
}

/** Parsed values, as the handler receives them. */
export type ParsedValues = Readonly<Record<string, unknown>>;

/** A declared command: its syntax and its handler. */
export interface Command extends CommandSyntax {
  /** Runs the command on parsed values; resolves to its exit code. */
  readonly run: (values: ParsedValues, context: Context) => Promise<number | void>;
}

/** A parsed command line, ready to run. */
export interface Invocation {
  readonly command: Command;
  readonly values: ParsedValues;
  /** The `--color` setting. */
  readonly color: ColorMode;
}

/** The `--color` option every command has. */
export const colorOption: ValueOptionSpec = {
  kind: "value",
  names: ["--color"],
  metavar: "WHEN",
  description: "Colour output: yes, no or auto (when stderr is a terminal and NO_COLOR is unset).",
  value: { type: "choice", choices: ["yes", "no", "auto"] },
};

/** Declares a command. */
export function defineCommand<
  const O extends Readonly<Record<string, OptionSpec>> = Record<never, OptionSpec>,
  const P extends Readonly<Record<string, PositionalSpec>> = Record<never, PositionalSpec>,
>(
  name: string,
  spec: {
    readonly brief: string;
    readonly description?: string;
    readonly takesProject?: boolean;
    readonly options?: O;
    readonly positionals?: P;
    readonly run: (values: CommandValues<O, P>, context: Context) => Promise<number | void>;
  },
): Command {
  return {
    name,
    brief: spec.brief,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    takesProject: spec.takesProject ?? false,
    options: spec.options ?? {},
    positionals: spec.positionals ?? {},
    // The parsers produce exactly the keys and value kinds the syntax declares.
    run: (values, context) => spec.run(values as CommandValues<O, P>, context),
  };
}

/** A flag. */
export function flagOption(names: OptionNames, description: string): FlagSpec {
  return { kind: "flag", names, description };
}

/** An option with a string value. */
export function valueOption(
  names: OptionNames,
  metavar: string,
  description: string,
): ValueOptionSpec & { readonly value: { readonly type: "string" } };
/** An option with an integer or a choice as its value. */
export function valueOption<const V extends ValueSpec>(
  names: OptionNames,
  metavar: string,
  description: string,
  value: V,
): ValueOptionSpec & { readonly value: V };
export function valueOption(
  names: OptionNames,
  metavar: string,
  description: string,
  value: ValueSpec = { type: "string" },
): ValueOptionSpec {
  return { kind: "value", names, metavar, description, value };
}

/** The PROJECT positional. */
export const projectPositional = { metavar: "PROJECT", description: "The project.", project: true } as const;
