/**
 * The hidden first argument that makes `virtdev` run as a VM's host agent
 * (see `host_agent.ts`), in a module of its own so that the entry point
 * can test for it without loading the agent.
 *
 * @module
 */

/** The hidden first argument that makes `virtdev` run as a VM's host agent. */
export const hostAgentArgument = "__host-agent";

/** The hidden first argument that makes `virtdev` run as a VM's egress filter (see `egress/net_filter.ts`). */
export const netFilterArgument = "__net-filter";
