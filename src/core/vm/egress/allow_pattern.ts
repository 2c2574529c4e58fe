/**
 * Allowlist patterns, one a line: a domain name (`example.org`), its
 * subdomains (`*.example.org`), an address or a CIDR block, each with an
 * optional `:port`, or a built-in set by name (`@debian`). Names are kept
 * in their ASCII form (IDN as punycode), lower case, without a trailing dot.
 *
 * @module
 */
import { type Cidr, formatCidr, parseCidr } from "./address.ts";
import allowSets from "./allow_sets.json" with { type: "json" };

/** One allowlist entry. */
export type AllowPattern =
  | { readonly kind: "name"; readonly name: string; readonly subdomains: boolean; readonly port?: number }
  | { readonly kind: "block"; readonly block: Cidr; readonly port?: number }
  | { readonly kind: "set"; readonly set: string };

/** A line that is not a pattern. */
export class AllowPatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AllowPatternError";
  }
}

/** The built-in sets, by name. */
export const builtinSets: Readonly<Record<string, readonly string[]>> = allowSets;

/**
 * Reads one pattern. A bare word without a dot that names a built-in set
 * is that set (a one-label name never resolves through public DNS).
 *
 * @throws {AllowPatternError} saying what is wrong with it.
 */
export function parseAllowPattern(text: string): AllowPattern {
  const line = text.trim();
  if (line === "") throw new AllowPatternError("An empty pattern.");
  if (line.startsWith("@") || (/^[a-z0-9-]+$/.test(line) && line in builtinSets)) {
    const set = line.replace(/^@/, "");
    if (!(set in builtinSets)) {
      throw new AllowPatternError(
        `'${line}' names no built-in set; the sets are ${Object.keys(builtinSets).map((s) => `@${s}`).join(", ")}.`,
      );
    }
    return { kind: "set", set };
  }
  const { host, port } = _splitPort(line);
  const block = parseCidr(host);
  if (block) return port === undefined ? { kind: "block", block } : { kind: "block", block, port };
  if (/^[0-9.]+(\/[0-9]+)?$/.test(host) || host.includes(":") || host.includes("/")) {
    throw new AllowPatternError(`'${line}' is not a valid address or CIDR block.`);
  }
  const subdomains = host.startsWith("*.");
  const name = normalizeName(subdomains ? host.slice(2) : host);
  if (name === undefined || !name.includes(".")) {
    throw new AllowPatternError(
      `'${line}' is not a domain name, a '*.' wildcard, an address, a CIDR block, or a built-in set.`,
    );
  }
  return port === undefined ? { kind: "name", name, subdomains } : { kind: "name", name, subdomains, port };
}

/** The pattern's text as kept in an allowlist file. */
export function formatAllowPattern(pattern: AllowPattern): string {
  if (pattern.kind === "set") return `@${pattern.set}`;
  const port = pattern.port === undefined ? "" : `:${pattern.port}`;
  if (pattern.kind === "name") return `${pattern.subdomains ? "*." : ""}${pattern.name}${port}`;
  const text = pattern.block.bits === pattern.block.base.length * 8
    ? formatCidr(pattern.block).replace(/\/[0-9]+$/, "")
    : formatCidr(pattern.block);
  return port && pattern.block.base.length === 16 ? `[${text}]${port}` : `${text}${port}`;
}

/** A line of an allowlist file that could not be read. */
export interface AllowFileProblem {
  readonly line: number;
  readonly message: string;
}

/**
 * Reads an allowlist file: one pattern a line; `#` starts a comment.
 * Returns the patterns and the problems (each with its line number).
 */
export function parseAllowFile(text: string): { patterns: AllowPattern[]; problems: AllowFileProblem[] } {
  const patterns: AllowPattern[] = [];
  const problems: AllowFileProblem[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    try {
      patterns.push(parseAllowPattern(line));
    } catch (error) {
      if (!(error instanceof AllowPatternError)) throw error;
      problems.push({ line: index + 1, message: error.message });
    }
  });
  return { patterns, problems };
}

/** The patterns with every set replaced by the patterns it holds. */
export function expandSets(patterns: readonly AllowPattern[]): AllowPattern[] {
  return patterns.flatMap((pattern) =>
    pattern.kind === "set" ? builtinSets[pattern.set].map((entry) => parseAllowPattern(entry)) : [pattern]
  );
}

/**
 * A host name in its ASCII, lower-case form without a trailing dot, or
 * `undefined` when it is not a valid name. IDN labels become punycode.
 */
export function normalizeName(text: string): string | undefined {
  let name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name === "" || name.length > 253) return undefined;
  if (/[^\x21-\x7e]/.test(name)) {
    if (/[\s/?#@:[\]\\%]/.test(name)) return undefined;
    try {
      name = new URL(`http://${name}/`).hostname;
    } catch {
      return undefined;
    }
  }
  name = name.toLowerCase();
  const labels = name.split(".");
  if (labels.some((label) => !/^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label))) return undefined;
  return name;
}

/** Whether the name pattern `pattern` covers `name` (already normalised). */
export function nameMatches(pattern: AllowPattern & { kind: "name" }, name: string): boolean {
  return pattern.subdomains ? name.endsWith(`.${pattern.name}`) : name === pattern.name;
}

function _splitPort(line: string): { host: string; port?: number } {
  const bracket = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(line);
  if (bracket) return { host: bracket[1], port: _port(bracket[2], line) };
  const colons = line.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = line.split(":");
    return { host, port: _port(port, line) };
  }
  return { host: line };
}

function _port(text: string | undefined, line: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) {
    throw new AllowPatternError(`'${line}' has a port that is not 1–65535.`);
  }
  return Number(text);
}
