/**
 * The entry point. `virtdev <command> …` and `virtdev-<command> …` (a link
 * named after the command) both land here; so does the host agent that
 * keeps a running VM, in the bundle and the compiled binary (from source it
 * has an entry of its own, `host_agent_main.ts`, which loads no CLI).
 *
 * @module
 */
import process from "node:process";
import { basename } from "node:path";
import { runCli } from "./cli/app.ts";
import { commands } from "./cli/commands.ts";
import { processEnvironment } from "./core/store/config.ts";
import { hostAgentArgument, runHostAgent } from "./core/vm/host_agent.ts";
import { processIo } from "./ui/io.ts";
import { version } from "./version.ts";

/** The arguments as the dispatcher sees them, with `virtdev-<cmd>` turned into `<cmd>`. */
export function dispatchArguments(argv0: string, args: readonly string[]): string[] {
  const match = /^virtdev-([a-z]+)$/.exec(basename(argv0));
  return match ? [match[1], ...args] : [...args];
}

if (import.meta.main && Deno.args[0] === hostAgentArgument) {
  // Not a command: a supervisor runs this to keep a VM (see host_agent.ts).
  Deno.exit(await runHostAgent(Deno.args[1] ?? "", Deno.args[2] ?? ""));
} else if (import.meta.main) {
  const code = await runCli(dispatchArguments(process.argv0, Deno.args), {
    io: processIo(),
    env: processEnvironment(),
    commands,
    version,
  });
  Deno.exit(code);
}
