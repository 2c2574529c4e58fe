/**
 * IP addresses as bytes (4 for IPv4, 16 for IPv6), their text forms, CIDR
 * blocks, and the special-purpose ranges the egress zones are built from.
 *
 * @module
 */

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export type Address = Uint8Array;

/** A block of addresses: `bits` leading bits of `base`. */
export interface Cidr {
  readonly base: Address;
  readonly bits: number;
}

/** What an address is, for the zones. */
export type AddressKind =
  | "loopback"
  | "unspecified"
  | "private"
  | "link-local"
  | "cgnat"
  | "multicast"
  | "broadcast"
  | "ula"
  | "reserved"
  | "public";

/** Parses a dotted IPv4 address (exactly four decimal parts, no leading zeros). */
export function parseIpv4(text: string): Address | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/** Parses an IPv6 address, with `::` and a trailing dotted IPv4 part; no zone index. */
export function parseIpv6(text: string): Address | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1 && head.length !== 8) return undefined;
  if (halves.length === 2 && head.length + tail.length > 7) return undefined;
  if (halves.length === 1 && halves[0].includes(".") && !/:/.test(halves[0])) return undefined;
  const all = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** Parses either kind of address. */
export function parseAddress(text: string): Address | undefined {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/** The usual text form: dotted IPv4, or IPv6 with the longest run of zero groups as `::`. */
export function formatAddress(address: Address): string {
  if (address.length === 4) return address.join(".");
  if (address.subarray(0, 10).every((b) => b === 0) && address[10] === 0xff && address[11] === 0xff) {
    return `::ffff:${address.subarray(12).join(".")}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i] << 8) | address[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** Parses `address/bits`; a bare address is a block of one. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const base = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!base) return undefined;
  const max = base.length * 8;
  if (slash < 0) return { base, bits: max };
  const bitsText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsText) || Number(bitsText) > max) return undefined;
  return { base: _masked(base, Number(bitsText)), bits: Number(bitsText) };
}

/** Whether `address` lies in `block` (never across families). */
export function inCidr(address: Address, block: Cidr): boolean {
  if (address.length !== block.base.length) return false;
  const whole = block.bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== block.base[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole] & mask) === (block.base[whole] & mask);
}

/** `a.b.c.d/bits` or `x::/bits`. */
export function formatCidr(block: Cidr): string {
  return `${formatAddress(block.base)}/${block.bits}`;
}

/** Whether two addresses are the same. */
export function sameAddress(a: Address, b: Address): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or
 * IPv4-compatible (`::a.b.c.d`) IPv6 address: passt and the host's
 * kernel may treat either as the IPv4 address, so it is judged as one.
 */
export function embeddedIpv4(address: Address): Address | undefined {
  if (address.length !== 16) return undefined;
  for (let i = 0; i < 10; i++) if (address[i] !== 0) return undefined;
  const mapped = address[10] === 0xff && address[11] === 0xff;
  const compatible = address[10] === 0 && address[11] === 0;
  if (!mapped && !compatible) return undefined;
  // ::1 and :: are IPv6's own loopback and unspecified address.
  if (compatible && address[12] === 0 && address[13] === 0 && address[14] === 0) return undefined;
  return address.slice(12);
}

const _blocks = (entries: readonly (readonly [string, AddressKind])[]) =>
  entries.map(([text, kind]) => ({ block: parseCidr(text)!, kind }));

/** The special ranges, most specific first where they overlap. */
const _special = _blocks([
  ["127.0.0.0/8", "loopback"],
  ["0.0.0.0/8", "unspecified"],
  ["10.0.0.0/8", "private"],
  ["172.16.0.0/12", "private"],
  ["192.168.0.0/16", "private"],
  ["169.254.0.0/16", "link-local"],
  ["100.64.0.0/10", "cgnat"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  ["240.0.0.0/4", "reserved"],
  ["::1/128", "loopback"],
  ["::/128", "unspecified"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "link-local"],
  ["fc00::/7", "ula"],
  ["ff00::/8", "multicast"],
  ["100::/64", "reserved"],
]);

/** What `address` is. An IPv4 address inside an IPv6 one is judged as IPv4. */
export function addressKind(address: Address): AddressKind {
  const inner = embeddedIpv4(address);
  if (inner) return addressKind(inner);
  for (const { block, kind } of _special) if (inCidr(address, block)) return kind;
  return "public";
}

function _masked(address: Address, bits: number): Address {
  const out = address.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}
