/**
 * The host agent's own entry point when virtdev runs from source: it loads
 * only the agent, none of the command line, so Deno starts it without the
 * package configuration. Arguments as for `main.ts`:
 * `__host-agent <project dir> <listening socket>`.
 *
 * @module
 */
import { hostAgentArgument, runHostAgent } from "./core/vm/host_agent.ts";

if (import.meta.main) {
  if (Deno.args[0] !== hostAgentArgument) Deno.exit(64);
  Deno.exit(await runHostAgent(Deno.args[1] ?? "", Deno.args[2] ?? ""));
}
