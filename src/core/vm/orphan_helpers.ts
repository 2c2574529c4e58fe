/**
 * Helpers a host agent left behind: a passt or an egress filter whose
 * agent is gone (killed, or crashed) serves no VM any more but keeps its
 * ports and memory. They are told apart by their command lines, which name
 * their project's `run/` directory, and by their parent, which is a live
 * host agent for every helper in use.
 *
 * @module
 */
import { findProcesses, processTable, signalProcess } from "../store/processes.ts";
import { hostAgentArgument, netFilterArgument } from "./host_agent_argument.ts";
import type { Store } from "../store/store.ts";

/** One helper process without its host agent. */
export interface OrphanHelper {
  readonly pid: number;
  /** The project whose `run/` its command line names. */
  readonly project: string;
  readonly kind: "passt" | "egress filter";
}

/**
 * The orphaned helpers of `store`'s projects (of `project` alone, when
 * given), from one look at the process table.
 */
export async function findOrphanHelpers(
  store: Pick<Store, "projectsDir">,
  options: { readonly project?: string } = {},
): Promise<OrphanHelper[]> {
  const table = await processTable();
  const prefix = `${store.projectsDir}/`;
  const orphans: OrphanHelper[] = [];
  for (const [pid, { ppid, args }] of table) {
    const kind = args.includes(netFilterArgument)
      ? "egress filter"
      : /^\S*\bpasst(\.avx2)?\s/.test(args)
      ? "passt"
      : undefined;
    if (kind === undefined) continue;
    const at = args.indexOf(prefix);
    if (at < 0) continue;
    const project = /^([A-Za-z0-9_-]{1,100})\/run\//.exec(args.slice(at + prefix.length))?.[1];
    if (project === undefined || (options.project !== undefined && project !== options.project)) continue;
    if (table.get(ppid)?.args.includes(hostAgentArgument)) continue;
    orphans.push({ pid, project, kind });
  }
  return orphans.sort((a, b) => a.pid - b.pid);
}

/** Ends `helpers` (SIGTERM, then SIGKILL after 2 s), and returns once they are gone. */
export async function endOrphanHelpers(helpers: readonly OrphanHelper[]): Promise<void> {
  const pids = helpers.map((helper) => helper.pid);
  for (const pid of pids) await signalProcess(pid, "TERM");
  const deadline = Date.now() + 2000;
  let left = pids;
  while (left.length > 0) {
    const alive = await findProcesses(left);
    left = left.filter((pid) => alive.has(pid));
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      for (const pid of left) await signalProcess(pid, "KILL");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
