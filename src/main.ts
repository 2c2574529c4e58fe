/**
 * The entry point. `virtdev <command> …` and `virtdev-<command> …` (a link
 * named after the command) both land here.
 *
 * @module
 */
import process from "node:process";
import { basename } from "node:path";
import { runCli } from "./cli/app.ts";
import { commands } from "./cli/commands.ts";
import { processEnvironment } from "./core/store/config.ts";
import { processIo } from "./ui/io.ts";
import { version } from "./version.ts";

/** The arguments as the dispatcher sees them, with `virtdev-<cmd>` turned into `<cmd>`. */
export function dispatchArguments(argv0: string, args: readonly string[]): string[] {
  const match = /^virtdev-([a-z]+)$/.exec(basename(argv0));
  return match ? [match[1], ...args] : [...args];
}

if (import.meta.main) {
  const code = await runCli(dispatchArguments(process.argv0, Deno.args), {
    io: processIo(),
    env: processEnvironment(),
    commands,
    version,
  });
  Deno.exit(code);
}
