/**
 * Whether a command line asks for help, told from the words alone so that
 * the answer needs no command and no parser loaded.
 *
 * @module
 */

/** Which page a line asks for: the program's, or command `name`'s. */
export type HelpRequest = { readonly page: "program" } | { readonly page: "command"; readonly name: string };

const _helpWords: readonly string[] = ["--help", "-h"];

/**
 * The page `args` asks for: `--help`, `-h` or `help` alone; `help <command>`;
 * `<command> --help` or `<command> -h`. Any other line (help among other
 * words, say) is left to the full parser.
 */
export function helpRequest(args: readonly string[]): HelpRequest | undefined {
  if (args.length === 1 && (_helpWords.includes(args[0]) || args[0] === "help")) return { page: "program" };
  if (args.length !== 2) return undefined;
  if (args[0] === "help" && !args[1].startsWith("-")) return { page: "command", name: args[1] };
  if (_helpWords.includes(args[1]) && !args[0].startsWith("-") && args[0] !== "help") {
    return { page: "command", name: args[0] };
  }
  return undefined;
}
