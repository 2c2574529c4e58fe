/**
 * The policy a running filter enforces, as the command line hands it over:
 * `run/net/policy.json`, rewritten (atomically) and signalled (SIGHUP) when
 * `net` or `allow` change a running VM. The filter reports the serial it
 * enforces in `run/net/filter.json`.
 *
 * @module
 */
import { join } from "../../store/path.ts";
import { writeFileAtomic } from "../../store/atomic_write.ts";
import { type AllowPattern, AllowPatternError, formatAllowPattern, parseAllowPattern } from "./allow_pattern.ts";
import { builtinZones, type EgressPolicy, type Zone } from "./zone_policy.ts";

/** What the command line gives the filter. */
export interface PolicyFile {
  /** Grows with every change, so a caller can wait for it to be in force. */
  readonly serial: number;
  readonly zone: Zone;
  readonly name: string;
  /** Allowlist patterns, sets already expanded. */
  readonly allowed: readonly string[];
  /** `address[:port]` of the resolvers to ask; `/etc/resolv.conf`'s when absent. */
  readonly dnsUpstream?: readonly string[];
}

/** What the filter reports. */
export interface FilterReport {
  readonly pid: number;
  /** The serial of the policy in force. */
  readonly serial: number;
  readonly zone: string;
  /** Attempts blocked since the filter started. */
  readonly blocked: number;
  /** DNS questions answered. */
  readonly dnsAnswered: number;
}

/** The files of a filter in its directory (`run/net/`). */
export function filterFiles(netDir: string): {
  readonly policy: string;
  readonly report: string;
  readonly guestSocket: string;
} {
  return {
    policy: join(netDir, "policy.json"),
    report: join(netDir, "filter.json"),
    guestSocket: join(netDir, "vm.sock"),
  };
}

/** The policy as the file holds it. */
export function policyFileOf(
  policy: EgressPolicy,
  options: { readonly serial: number; readonly dnsUpstream?: readonly string[] },
): PolicyFile {
  return {
    serial: options.serial,
    zone: policy.zone,
    name: policy.name,
    allowed: policy.allowed.map(formatAllowPattern),
    ...(options.dnsUpstream ? { dnsUpstream: options.dnsUpstream } : {}),
  };
}

/** Writes the policy file. */
export async function writePolicyFile(netDir: string, file: PolicyFile): Promise<void> {
  await writeFileAtomic(filterFiles(netDir).policy, `${JSON.stringify(file)}\n`);
}

/**
 * Reads the policy file back into a policy.
 *
 * @throws {Error} when it is missing or does not parse: the filter then
 *   keeps the policy it has (or, at its start, refuses to run).
 */
export async function readPolicyFile(netDir: string): Promise<{ file: PolicyFile; policy: EgressPolicy }> {
  const raw = JSON.parse(await Deno.readTextFile(filterFiles(netDir).policy));
  if (typeof raw?.serial !== "number" || !(builtinZones as readonly string[]).includes(raw.zone)) {
    throw new Error("the policy file is malformed");
  }
  const allowed: AllowPattern[] = [];
  for (const text of Array.isArray(raw.allowed) ? raw.allowed : []) {
    try {
      allowed.push(parseAllowPattern(String(text)));
    } catch (error) {
      if (!(error instanceof AllowPatternError)) throw error;
    }
  }
  const file: PolicyFile = {
    serial: raw.serial,
    zone: raw.zone,
    name: typeof raw.name === "string" ? raw.name : raw.zone,
    allowed: allowed.map(formatAllowPattern),
    ...(Array.isArray(raw.dnsUpstream) ? { dnsUpstream: raw.dnsUpstream.map(String) } : {}),
  };
  return { file, policy: { zone: file.zone, name: file.name, allowed } };
}

/** The filter's report, or `undefined` when it has none (yet). */
export async function readFilterReport(netDir: string): Promise<FilterReport | undefined> {
  try {
    const raw = JSON.parse(await Deno.readTextFile(filterFiles(netDir).report));
    return typeof raw?.serial === "number" ? raw as FilterReport : undefined;
  } catch {
    return undefined;
  }
}
