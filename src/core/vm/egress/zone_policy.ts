/**
 * The egress zones and the rules each one stands for. The filter judges a
 * guest's packet by the first rule that matches its destination; `net
 * --rules` prints the same list, so what is shown is what is enforced.
 *
 * @module
 */
import { type Address, addressKind, type Cidr, formatAddress, formatCidr, inCidr, sameAddress } from "./address.ts";
import { type AllowPattern, nameMatches } from "./allow_pattern.ts";

/** The built-in zones, from least to most reach. */
export const builtinZones = ["none", "allow", "wan", "lan", "full"] as const;

/** A built-in zone. */
export type Zone = typeof builtinZones[number];

/** What the filter enforces for one VM. */
export interface EgressPolicy {
  /** The built-in zone the policy is built on. */
  readonly zone: Zone;
  /** What the user called it: the built-in zone or a custom zone's name. */
  readonly name: string;
  /** Allowed on top of the zone: the project's allowlist and the custom zone's patterns, sets expanded. */
  readonly allowed: readonly AllowPattern[];
}

/** What the filter knows of the host: its own addresses and the subnets they sit on. */
export interface HostView {
  readonly addresses: readonly Address[];
  readonly subnets: readonly Cidr[];
}

/** An address the guest learned through the filter's DNS, from an allowed name. */
export interface LearnedName {
  readonly name: string;
  /** The allowlist's port for that name, when it names one. */
  readonly port?: number;
}

/** What happens to a packet. */
export type Verdict =
  | { readonly allow: true; readonly rule: string; readonly byName?: boolean }
  | { readonly allow: false; readonly rule: string };

/** One rule: what it matches, and whether it lets the packet through. */
export interface EgressRule {
  readonly action: "allow" | "drop";
  /** What it matches, for people. */
  readonly matches: string;
  /** Whether the destination matches. */
  readonly test: (address: Address, port: number | undefined, learned: LearnedName | undefined) => boolean;
  /** The rule lets through an address learned by name (TCP only, the name is checked again in the request). */
  readonly byName?: boolean;
}

const _wanBlocked = new Set(["private", "link-local", "cgnat", "ula", "reserved"]);

/** The rules of `policy` on `host`, first match wins. */
export function egressRules(policy: EgressPolicy, host: HostView): EgressRule[] {
  const kind = (kinds: readonly string[]) => (address: Address) => kinds.includes(addressKind(address));
  const rules: EgressRule[] = [
    { action: "drop", matches: "the host's loopback (127.0.0.0/8, ::1)", test: kind(["loopback"]) },
    { action: "drop", matches: "unspecified addresses (0.0.0.0/8, ::)", test: kind(["unspecified"]) },
    { action: "drop", matches: "multicast and broadcast", test: kind(["multicast", "broadcast"]) },
  ];
  for (const pattern of policy.allowed) {
    if (pattern.kind !== "block") continue;
    const block = pattern.block;
    rules.push({
      action: "allow",
      matches: `${formatCidr(block)}${pattern.port ? ` port ${pattern.port}` : ""} (allowlist)`,
      test: (address, port) => inCidr(address, block) && (pattern.port === undefined || pattern.port === port),
    });
  }
  if (policy.allowed.some((pattern) => pattern.kind === "name")) {
    rules.push({
      action: "allow",
      matches: `addresses the filter's DNS gave for allowed names, for their TTL (${
        policy.allowed.filter((p) => p.kind === "name").length
      } names)`,
      test: (_address, port, learned) =>
        learned !== undefined && (learned.port === undefined || learned.port === port) &&
        policy.allowed.some((p) => p.kind === "name" && nameMatches(p, learned.name)),
      byName: true,
    });
  }
  const own = (address: Address) => host.addresses.some((a) => sameAddress(a, address));
  switch (policy.zone) {
    case "none":
      rules.push({ action: "drop", matches: "everything (zone none)", test: () => true });
      break;
    case "allow":
      rules.push({ action: "drop", matches: "everything else (zone allow)", test: () => true });
      break;
    case "wan":
      rules.push(
        { action: "drop", matches: `this host's own addresses (${_list(host.addresses)})`, test: own },
        {
          action: "drop",
          matches: "private, link-local (169.254.169.254 too), CGNAT, ULA and reserved ranges",
          test: (address) => _wanBlocked.has(addressKind(address)),
        },
        {
          action: "drop",
          matches: `this host's LAN (${host.subnets.map(formatCidr).join(", ") || "none"})`,
          test: (address) => host.subnets.some((subnet) => inCidr(address, subnet)),
        },
        { action: "allow", matches: "the internet (zone wan)", test: () => true },
      );
      break;
    case "lan":
      rules.push(
        { action: "drop", matches: `this host's own addresses (${_list(host.addresses)})`, test: own },
        { action: "allow", matches: "the internet and the LAN (zone lan)", test: () => true },
      );
      break;
    case "full":
      rules.push({
        action: "allow",
        matches: "the internet, the LAN and this host's other addresses (zone full)",
        test: () => true,
      });
      break;
  }
  return rules;
}

/** Judges one destination by `rules`. */
export function judge(
  rules: readonly EgressRule[],
  address: Address,
  port: number | undefined,
  learned: LearnedName | undefined,
): Verdict {
  for (const rule of rules) {
    if (!rule.test(address, port, learned)) continue;
    return rule.action === "allow"
      ? { allow: true, rule: rule.matches, byName: rule.byName }
      : { allow: false, rule: rule.matches };
  }
  return { allow: false, rule: "no rule" };
}

/** The allowlist's name pattern that covers `name`, if any. */
export function allowedName(policy: EgressPolicy, name: string): (AllowPattern & { kind: "name" }) | undefined {
  for (const pattern of policy.allowed) {
    if (pattern.kind === "name" && nameMatches(pattern, name)) return pattern;
  }
  return undefined;
}

/** Whether the guest may ask the filter's DNS for `name` at all. */
export function mayResolve(policy: EgressPolicy, name: string | undefined): boolean {
  if (policy.zone === "none") return false;
  if (policy.zone !== "allow") return true;
  return name !== undefined && allowedName(policy, name) !== undefined;
}

/**
 * Whether an answer's address reaches the guest: an address the zone would
 * drop is taken out of the answer (DNS rebinding), except for a name the
 * allowlist names exactly (`db.corp.example` may point into the LAN on
 * purpose; `*.example.org` may not).
 */
export function keepsAnswer(policy: EgressPolicy, host: HostView, name: string, address: Address): boolean {
  const kind = addressKind(address);
  if (kind === "loopback" || kind === "unspecified" || kind === "multicast" || kind === "broadcast") return false;
  const exact = policy.allowed.some((p) => p.kind === "name" && !p.subdomains && p.name === name);
  if (exact) return true;
  const asIf: EgressPolicy = policy.zone === "allow" ? { ...policy, zone: "wan" } : policy;
  return judge(egressRules({ ...asIf, allowed: [] }, host), address, undefined, undefined).allow;
}

function _list(addresses: readonly Address[]): string {
  return addresses.map(formatAddress).join(", ") || "none";
}
