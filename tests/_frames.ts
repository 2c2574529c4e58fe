/** Frames for the egress filter's tests: what a guest (or root in it) could send. */
import { parseAddress } from "../src/core/vm/egress/address.ts";
import { buildUdpFrame } from "../src/core/vm/egress/frame.ts";

export const guestMac = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
export const gatewayMac = new Uint8Array([0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]);

/** A TCP segment in an Ethernet frame (checksums left zero: the filter does not need them). */
export function tcpFrame(
  options: {
    src: string;
    dst: string;
    srcPort: number;
    dstPort: number;
    flags: number;
    seq?: number;
    ack?: number;
    payload?: Uint8Array;
    fromMac?: Uint8Array;
    toMac?: Uint8Array;
  },
): Uint8Array {
  const src = parseAddress(options.src)!;
  const dst = parseAddress(options.dst)!;
  const payload = options.payload ?? new Uint8Array(0);
  const tcp = new Uint8Array(20 + payload.length);
  const view = new DataView(tcp.buffer);
  view.setUint16(0, options.srcPort);
  view.setUint16(2, options.dstPort);
  view.setUint32(4, options.seq ?? 1000);
  view.setUint32(8, options.ack ?? 0);
  tcp[12] = 5 << 4;
  tcp[13] = options.flags;
  tcp.set(payload, 20);
  return _ip(src, dst, 6, tcp, options.fromMac ?? guestMac, options.toMac ?? gatewayMac);
}

/** A UDP datagram from the guest. */
export function udpFrame(src: string, dst: string, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  return buildUdpFrame(
    { mac: guestMac, address: parseAddress(src)!, port: srcPort },
    { mac: gatewayMac, address: parseAddress(dst)!, port: dstPort },
    payload,
  );
}

function _ip(src: Uint8Array, dst: Uint8Array, protocol: number, body: Uint8Array, from: Uint8Array, to: Uint8Array) {
  const v6 = src.length === 16;
  const header = v6 ? 40 : 20;
  const frame = new Uint8Array(14 + header + body.length);
  const view = new DataView(frame.buffer);
  frame.set(to, 0);
  frame.set(from, 6);
  view.setUint16(12, v6 ? 0x86dd : 0x0800);
  if (v6) {
    frame[14] = 0x60;
    view.setUint16(18, body.length);
    frame[20] = protocol;
    frame[21] = 64;
    frame.set(src, 22);
    frame.set(dst, 38);
  } else {
    frame[14] = 0x45;
    view.setUint16(16, header + body.length);
    frame[22] = 64;
    frame[23] = protocol;
    frame.set(src, 26);
    frame.set(dst, 30);
  }
  frame.set(body, 14 + header);
  return frame;
}

/** A DNS query for `name`. */
export function dnsQuery(name: string, type = 1, id = 0x1234): Uint8Array {
  const labels = name.split(".").filter(Boolean);
  const out: number[] = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const label of labels) out.push(label.length, ...new TextEncoder().encode(label));
  out.push(0, type >> 8, type & 0xff, 0, 1);
  return new Uint8Array(out);
}

/** An answer to `query` with records `[owner, type, ttl, data]` (names uncompressed). */
export function dnsAnswer(
  query: Uint8Array,
  records: readonly (readonly [string, number, number, Uint8Array | string])[],
  options: { flags?: number } = {},
): Uint8Array {
  const out = [...query];
  out[2] = (options.flags ?? 0x8180) >> 8;
  out[3] = (options.flags ?? 0x8180) & 0xff;
  out[7] = records.length;
  for (const [owner, type, ttl, data] of records) {
    out.push(
      ..._name(owner),
      type >> 8,
      type & 0xff,
      0,
      1,
      ttl >>> 24,
      (ttl >> 16) & 0xff,
      (ttl >> 8) & 0xff,
      ttl & 0xff,
    );
    const bytes = typeof data === "string" ? _name(data) : [...data];
    out.push(bytes.length >> 8, bytes.length & 0xff, ...bytes);
  }
  return new Uint8Array(out);
}

function _name(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter(Boolean)) out.push(label.length, ...new TextEncoder().encode(label));
  out.push(0);
  return out;
}

/** A TLS ClientHello naming `name`, optionally padded so that it spans segments. */
export function clientHello(name: string, padding = 0): Uint8Array {
  const host = new TextEncoder().encode(name);
  const sni = [0, 0, 0, host.length + 5, 0, host.length + 3, 0, host.length >> 8, host.length & 0xff, ...host];
  const pad = padding > 0 ? [0, 21, padding >> 8, padding & 0xff, ...new Array(padding).fill(0)] : [];
  const extensions = [...sni, ...pad];
  const body = [
    3,
    3,
    ...new Array(32).fill(7),
    0,
    0,
    2,
    0x13,
    0x01,
    1,
    0,
    extensions.length >> 8,
    extensions.length & 0xff,
    ...extensions,
  ];
  const handshake = [1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
  return new Uint8Array([0x16, 3, 1, handshake.length >> 8, handshake.length & 0xff, ...handshake]);
}
