/**
 * How a command is declared: its name, help, argument parser and handler.
 * Every command gets `--color` from here.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { type Message, message } from "@optique/core/message";
import { map, withDefault } from "@optique/core/modifiers";
import type { Parser } from "@optique/core/parser";
import { command, option } from "@optique/core/primitives";
import { choice } from "@optique/core/valueparser";
import type { ColorMode } from "../ui/color.ts";
import type { Context } from "./context.ts";

/** A parsed command line, ready to run. */
export interface Invocation {
  /** The `--color` setting. */
  readonly color: ColorMode;
  /** Runs the command; resolves to its exit code. */
  readonly execute: (context: Context) => Promise<number>;
}

/** A command as registered with the CLI. */
export interface CommandSpec {
  /** The command name, e.g. `create`. */
  readonly name: string;
  /** Whether its first positional is a project name. */
  readonly takesProject: boolean;
  /** The parser producing an {@link Invocation}. */
  readonly parser: Parser<"sync", Invocation, unknown>;
}

function _colorOption() {
  return withDefault(
    option("--color", choice(["yes", "no", "auto"] as const, { metavar: "WHEN" }), {
      description: message`Colour output: yes, no or auto (when stderr is a terminal and NO_COLOR is unset).`,
    }),
    "auto" as const,
  );
}

/** Declares a command. */
export function defineCommand<T extends object>(
  name: string,
  spec: {
    readonly brief: Message;
    readonly description?: Message;
    readonly takesProject?: boolean;
    readonly parser: Parser<"sync", T, unknown>;
    readonly run: (args: T, context: Context) => Promise<number | void>;
  },
): CommandSpec {
  const parser = map(object({ args: spec.parser, color: _colorOption() }), (values): Invocation => ({
    color: values.color,
    // object() reports a field's value as `T extends infer U ? U : never`,
    // which is T itself; TypeScript cannot see that for a generic T.
    execute: async (context) => (await spec.run(values.args as T, context)) ?? 0,
  }));
  return {
    name,
    takesProject: spec.takesProject ?? false,
    parser: command(name, parser, { brief: spec.brief, description: spec.description ?? spec.brief }),
  };
}
