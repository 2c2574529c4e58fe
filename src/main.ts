/**
 * The entry point. `virtdev <command> …` and `virtdev-<command> …` (a link
 * named after the command) both land here; so does the host agent that
 * keeps a running VM, which loads none of the command line.
 *
 * @module
 */
import process from "node:process";
import { basename } from "node:path";
import { hostAgentArgument } from "./core/vm/host_agent_argument.ts";

/** The arguments as the dispatcher sees them, with `virtdev-<cmd>` turned into `<cmd>`. */
export function dispatchArguments(argv0: string, args: readonly string[]): string[] {
  const match = /^virtdev-([a-z]+)$/.exec(basename(argv0));
  return match ? [match[1], ...args] : [...args];
}

if (import.meta.main && Deno.args[0] === hostAgentArgument) {
  // Not a command: a supervisor runs this to keep a VM (see host_agent.ts).
  const { runHostAgent } = await import("./core/vm/host_agent.ts");
  Deno.exit(await runHostAgent(Deno.args[1] ?? "", Deno.args[2] ?? ""));
} else if (import.meta.main) {
  const [{ runCli }, { commands }, { processEnvironment }, { processIo }, { version }] = await Promise.all([
    import("./cli/app.ts"),
    import("./cli/commands.ts"),
    import("./core/store/config.ts"),
    import("./ui/io.ts"),
    import("./version.ts"),
  ]);
  const code = await runCli(dispatchArguments(process.argv0, Deno.args), {
    io: processIo(),
    env: processEnvironment(),
    commands,
    version,
  });
  Deno.exit(code);
}
