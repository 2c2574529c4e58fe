/**
 * The host agent's own entry point when virtdev runs from source: it loads
 * only the agent, none of the command line, so Deno starts it without the
 * package configuration. Arguments as for `main.ts`:
 * `__host-agent <project dir> <listening socket>`, or the egress filter's:
 * `__net-filter <network dir> <blocked log>`.
 *
 * @module
 */
import { hostAgentArgument, netFilterArgument } from "./core/vm/host_agent_argument.ts";

if (import.meta.main) {
  if (Deno.args[0] === hostAgentArgument) {
    const { runHostAgent } = await import("./core/vm/host_agent.ts");
    Deno.exit(await runHostAgent(Deno.args[1] ?? "", Deno.args[2] ?? ""));
  } else if (Deno.args[0] === netFilterArgument) {
    const { runNetFilter } = await import("./core/vm/egress/net_filter.ts");
    Deno.exit(await runNetFilter(Deno.args[1] ?? "", Deno.args[2] ?? ""));
  }
  Deno.exit(64);
}
