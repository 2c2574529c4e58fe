/**
 * The little of DNS the egress filter speaks: it reads a guest's question,
 * and rewrites an upstream answer so that the guest sees only the CNAME
 * chain of its question and the addresses its zone allows. Everything is
 * read with bounds: an upstream may send anything.
 *
 * @module
 */
import type { Address } from "./address.ts";

/** DNS record types the filter knows. */
export const DnsType = { a: 1, cname: 5, aaaa: 28 } as const;

/** DNS response codes the filter sends. */
export const DnsRcode = { ok: 0, formErr: 1, servFail: 2, nxDomain: 3, refused: 5 } as const;

/** A message that is not one the filter can read. */
export class DnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DnsFormatError";
  }
}

/** A guest's question. */
export interface DnsQuestion {
  readonly id: number;
  /** Lower case, no trailing dot; `undefined` when a label holds bytes no host name has. */
  readonly name: string | undefined;
  /** The name as asked, for the log (printable ASCII; others as `\ddd`). */
  readonly shown: string;
  readonly type: number;
  readonly class: number;
  /** The question section's bytes, copied into answers. */
  readonly section: Uint8Array;
}

/** An address the answer gives for the question, with its record's TTL. */
export interface DnsAddress {
  readonly address: Address;
  readonly ttl: number;
}

/** The largest answer sent to a guest over UDP; more is cut, with TC set. */
export const maxGuestAnswerBytes = 1232;

/**
 * Reads a guest's query: one question, standard opcode, not a response.
 *
 * @throws {DnsFormatError} otherwise.
 */
export function parseDnsQuery(message: Uint8Array): DnsQuestion {
  if (message.length < 12) throw new DnsFormatError("shorter than a DNS header");
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const flags = view.getUint16(2);
  if (flags & 0x8000) throw new DnsFormatError("a response, not a query");
  if (((flags >> 11) & 0xf) !== 0) throw new DnsFormatError("not a standard query");
  if (view.getUint16(4) !== 1) throw new DnsFormatError("not exactly one question");
  const { labels, next } = _readName(message, 12);
  if (next + 4 > message.length) throw new DnsFormatError("the question is cut short");
  return {
    id: view.getUint16(0),
    name: _hostName(labels),
    shown: _shownName(labels),
    type: view.getUint16(next),
    class: view.getUint16(next + 2),
    section: message.slice(12, next + 4),
  };
}

/** An answer to `question` with no records and `rcode`. */
export function dnsErrorAnswer(question: DnsQuestion, rcode: number): Uint8Array {
  const out = new Uint8Array(12 + question.section.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, question.id);
  view.setUint16(2, 0x8000 | 0x0100 | 0x0080 | (rcode & 0xf));
  view.setUint16(4, 1);
  out.set(question.section, 12);
  return out;
}

/**
 * Rewrites an upstream answer to `question` for the guest. It keeps the
 * CNAME chain that starts at the question's name and the A and AAAA
 * records of that chain whose address `keep` accepts; it drops the
 * authority and additional sections (they may carry other addresses).
 *
 * @throws {DnsFormatError} when the answer is malformed or answers another question.
 */
export function filterDnsAnswer(
  answer: Uint8Array,
  question: DnsQuestion,
  keep: (address: Address) => boolean,
): { message: Uint8Array; addresses: DnsAddress[]; dropped: Address[] } {
  if (answer.length < 12) throw new DnsFormatError("shorter than a DNS header");
  const view = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
  if (view.getUint16(0) !== question.id) throw new DnsFormatError("another query's ID");
  const flags = view.getUint16(2);
  if (!(flags & 0x8000)) throw new DnsFormatError("not a response");
  if (view.getUint16(4) !== 1) throw new DnsFormatError("not exactly one question");
  const asked = _readName(answer, 12);
  if (asked.next + 4 > answer.length) throw new DnsFormatError("the question is cut short");
  const section = answer.subarray(12, asked.next + 4);
  if (!_sameQuestion(section, question.section)) throw new DnsFormatError("an answer to another question");
  const count = view.getUint16(6);
  let offset = asked.next + 4;
  const records: { owner: string; type: number; ttl: number; data: Uint8Array; target?: string }[] = [];
  for (let i = 0; i < count; i++) {
    const owner = _readName(answer, offset);
    offset = owner.next;
    if (offset + 10 > answer.length) throw new DnsFormatError("a record is cut short");
    const type = view.getUint16(offset);
    const ttl = view.getUint32(offset + 4);
    const length = view.getUint16(offset + 8);
    offset += 10;
    if (offset + length > answer.length) throw new DnsFormatError("a record's data is cut short");
    const data = answer.slice(offset, offset + length);
    const record = { owner: _hostName(owner.labels) ?? "", type, ttl, data, target: undefined as string | undefined };
    if (type === DnsType.cname) {
      const target = _readName(answer, offset);
      if (target.next !== offset + length) throw new DnsFormatError("a CNAME's data is malformed");
      // A target no host name could be ends the chain there.
      record.target = _hostName(target.labels);
    }
    if ((type === DnsType.a && length !== 4) || (type === DnsType.aaaa && length !== 16)) {
      throw new DnsFormatError("an address record of the wrong length");
    }
    records.push(record);
    offset += length;
  }
  // The chain from the question's name; a loop or a fork ends it.
  if (question.name === undefined) throw new DnsFormatError("a question no host name could be");
  const chain = [question.name];
  for (let step = 0; step < 16; step++) {
    const next = records.find((r) => r.type === DnsType.cname && r.owner === chain.at(-1));
    if (!next?.target || chain.includes(next.target)) break;
    chain.push(next.target);
  }
  const addresses: DnsAddress[] = [];
  const dropped: Address[] = [];
  const kept: Uint8Array[] = [];
  for (const record of records) {
    const link = chain.indexOf(record.owner);
    if (link < 0) continue;
    if (record.type === DnsType.cname) {
      if (record.owner === chain[link] && record.target === chain[link + 1]) {
        kept.push(_record(record.owner, record.type, record.ttl, _encodeName(record.target)));
      }
    } else if (record.type === DnsType.a || record.type === DnsType.aaaa) {
      if (record.type !== question.type) continue;
      if (keep(record.data)) {
        addresses.push({ address: record.data, ttl: record.ttl });
        kept.push(_record(record.owner, record.type, record.ttl, record.data));
      } else {
        dropped.push(record.data);
      }
    }
  }
  let truncated = (flags & 0x0200) !== 0;
  let size = 12 + question.section.length;
  const fits: Uint8Array[] = [];
  for (const record of kept) {
    if (size + record.length > maxGuestAnswerBytes) {
      truncated = true;
      break;
    }
    fits.push(record);
    size += record.length;
  }
  const out = new Uint8Array(size);
  const outView = new DataView(out.buffer);
  outView.setUint16(0, question.id);
  const rcode = flags & 0xf;
  outView.setUint16(2, 0x8000 | (flags & 0x0500) | 0x0080 | (truncated ? 0x0200 : 0) | rcode);
  outView.setUint16(4, 1);
  outView.setUint16(6, fits.length);
  out.set(question.section, 12);
  let at = 12 + question.section.length;
  for (const record of fits) {
    out.set(record, at);
    at += record.length;
  }
  return { message: out, addresses, dropped };
}

/** Reads a (possibly compressed) name at `offset`: its labels and where the name ends. */
function _readName(message: Uint8Array, offset: number): { labels: Uint8Array[]; next: number } {
  const labels: Uint8Array[] = [];
  let at = offset;
  let next = -1;
  let total = 0;
  for (let jumps = 0;;) {
    if (at >= message.length) throw new DnsFormatError("a name runs past the message");
    const length = message[at];
    if (length === 0) {
      if (next < 0) next = at + 1;
      break;
    }
    if ((length & 0xc0) === 0xc0) {
      if (at + 1 >= message.length) throw new DnsFormatError("a name pointer is cut short");
      if (++jumps > 32) throw new DnsFormatError("a name's pointers loop");
      if (next < 0) next = at + 2;
      at = ((length & 0x3f) << 8) | message[at + 1];
      continue;
    }
    if (length & 0xc0) throw new DnsFormatError("a label of an unknown kind");
    if (at + 1 + length > message.length) throw new DnsFormatError("a label runs past the message");
    total += length + 1;
    if (total > 255) throw new DnsFormatError("a name longer than 255 bytes");
    labels.push(message.subarray(at + 1, at + 1 + length));
    at += 1 + length;
  }
  return { labels, next };
}

function _key(labels: readonly Uint8Array[]): string {
  return labels.map((label) => Array.from(label, (b) => String.fromCharCode(b >= 65 && b <= 90 ? b + 32 : b)).join(""))
    .join(".");
}

function _hostName(labels: readonly Uint8Array[]): string | undefined {
  if (labels.length === 0) return undefined;
  const name = _key(labels);
  return labels.every((label) => /^[a-z0-9_-]+$/.test(_key([label]))) ? name : undefined;
}

function _shownName(labels: readonly Uint8Array[]): string {
  return labels.map((label) =>
    Array.from(
      label,
      (b) =>
        b > 0x20 && b < 0x7f && b !== 0x5c && b !== 0x2e
          ? String.fromCharCode(b)
          : `\\${b.toString().padStart(3, "0")}`,
    )
      .join("")
  ).join(".") || ".";
}

function _sameQuestion(a: Uint8Array, b: Uint8Array): boolean {
  // Compressed or differently cased: compare by meaning.
  try {
    const left = _readName(a, 0);
    const right = _readName(b, 0);
    return _key(left.labels) === _key(right.labels) &&
      a.subarray(left.next, left.next + 4).every((byte, i) => byte === b[right.next + i]);
  } catch {
    return false;
  }
}

function _encodeName(name: string): Uint8Array {
  const parts = name === "" ? [] : name.split(".");
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 1));
  let at = 0;
  for (const part of parts) {
    out[at++] = part.length;
    for (let i = 0; i < part.length; i++) out[at++] = part.charCodeAt(i);
  }
  return out;
}

function _record(owner: string, type: number, ttl: number, data: Uint8Array): Uint8Array {
  const name = _encodeName(owner);
  const out = new Uint8Array(name.length + 10 + data.length);
  out.set(name, 0);
  const view = new DataView(out.buffer);
  view.setUint16(name.length, type);
  view.setUint16(name.length + 2, 1);
  view.setUint32(name.length + 4, ttl);
  view.setUint16(name.length + 8, data.length);
  out.set(data, name.length + 10);
  return out;
}
