/**
 * The hidden first argument that makes `virtdev` run as a VM's host agent
 * (`host_agent.ts`). Its own module so that the entry point can check for
 * it without loading the agent.
 *
 * @module
 */
export const hostAgentArgument = "__host-agent";
