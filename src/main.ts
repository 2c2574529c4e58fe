/**
 * The entry point. `virtdev <command> …` and `virtdev-<command> …` (a link
 * named after the command) both land here; so does the host agent that
 * keeps a running VM, in the bundle and the compiled binary (from source it
 * has an entry of its own, `host_agent_main.ts`, which loads no CLI).
 *
 * Everything beyond the dispatcher is imported on demand: start-up time is
 * most of what short commands cost.
 *
 * @module
 */
import { hostAgentArgument, netFilterArgument } from "./core/vm/host_agent_argument.ts";
import { version } from "./version.ts";
import { helpRequest } from "./cli/help_request.ts";

/** The arguments as the dispatcher sees them, with `virtdev-<cmd>` turned into `<cmd>`. */
export function dispatchArguments(argv0: string, args: readonly string[]): string[] {
  const match = /^virtdev-([a-z-]+)$/.exec(argv0.slice(argv0.lastIndexOf("/") + 1));
  return match ? [match[1], ...args] : [...args];
}

/** The name this process was started under (argv[0]), which Deno does not expose directly. */
async function _argv0(): Promise<string> {
  // Deno keeps argv[0] for its Node layer, whose loading costs ~20 ms, a
  // third of a short command: read it where the runtime keeps it, and
  // load node:process only where a runtime keeps it elsewhere.
  const runtime = (Deno as unknown as Record<symbol, { __nodeBootstrapArgs?: { argv0?: unknown } } | undefined>)[
    (Deno as unknown as { internal: symbol }).internal
  ];
  const argv0 = runtime?.__nodeBootstrapArgs?.argv0;
  if (typeof argv0 === "string") return argv0;
  return (await import("node:process")).default.argv0;
}

if (import.meta.main && Deno.args[0] === hostAgentArgument) {
  // Not a command: a supervisor runs this to keep a VM (see host_agent.ts).
  const { runHostAgent } = await import("./core/vm/host_agent.ts");
  Deno.exit(await runHostAgent(Deno.args[1] ?? "", Deno.args[2] ?? ""));
} else if (import.meta.main && Deno.args[0] === netFilterArgument) {
  // Not a command: the host agent runs this between QEMU and passt (see egress/net_filter.ts).
  const { runNetFilter } = await import("./core/vm/egress/net_filter.ts");
  Deno.exit(await runNetFilter(Deno.args[1] ?? "", Deno.args[2] ?? ""));
} else if (import.meta.main) {
  const args = dispatchArguments(await _argv0(), Deno.args);
  if (args.length === 1 && args[0] === "--version") {
    Deno.stdout.writeSync(new TextEncoder().encode(`${version}\n`));
    Deno.exit(0);
  }
  // Help is text rendered ahead of time: no command and no parser is loaded for it.
  const help = helpRequest(args);
  if (help) {
    const { programHelp, commandHelp } = await import("./cli/help_pages.ts");
    const page = help.page === "program" ? programHelp : commandHelp[help.name];
    if (page !== undefined) {
      // A pipe may take a long page in parts.
      const bytes = new TextEncoder().encode(page);
      for (let written = 0; written < bytes.length;) written += Deno.stdout.writeSync(bytes.subarray(written));
      Deno.exit(0);
    }
  }
  const [{ runCli }, { processEnvironment }, { processIo }] = await Promise.all([
    import("./cli/app.ts"),
    import("./core/store/config.ts"),
    import("./ui/io.ts"),
  ]);
  Deno.exit(await runCli(args, { io: processIo(), env: processEnvironment(), version }));
}
