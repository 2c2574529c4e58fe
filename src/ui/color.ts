/**
 * Colour decisions and the few styles virtdev uses.
 *
 * @module
 */

/** The `--color` setting. */
export type ColorMode = "yes" | "no" | "auto";

/** The colour modes accepted by `--color`. */
export const colorModes: readonly ColorMode[] = ["yes", "no", "auto"];

/**
 * Decides whether to colour output. `auto` colours when stderr is a
 * terminal, `NO_COLOR` is unset or empty, and `TERM` is set and not `dumb`.
 */
export function shouldColor(
  mode: ColorMode,
  context: { readonly stderrIsTerminal: boolean; readonly env: Readonly<Record<string, string | undefined>> },
): boolean {
  if (mode === "yes") return true;
  if (mode === "no") return false;
  const term = context.env.TERM ?? "";
  return context.stderrIsTerminal && !context.env.NO_COLOR && term !== "" && term !== "dumb";
}

/** A set of styling functions; all identity functions when colour is off. */
export interface Palette {
  readonly green: (text: string) => string;
  readonly red: (text: string) => string;
  readonly yellow: (text: string) => string;
  readonly bold: (text: string) => string;
  readonly dim: (text: string) => string;
}

/** Makes the palette for `enabled`. */
export function palette(enabled: boolean): Palette {
  const style = (open: number, close: number) => (text: string): string =>
    enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    green: style(32, 39),
    red: style(31, 39),
    yellow: style(33, 39),
    bold: style(1, 22),
    dim: style(2, 22),
  };
}

/** The width of `text` on a terminal, ignoring colour escapes. */
export function visibleLength(text: string): number {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/** Pads `text` to `width` visible columns. */
export function padVisible(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - visibleLength(text)));
}
