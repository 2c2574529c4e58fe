/**
 * Ethernet frames as QEMU's stream netdev and passt carry them: read just
 * far enough to know where a guest's packet goes, and built for the few
 * packets the filter answers itself (DNS answers, TCP resets).
 *
 * @module
 */
import type { Address } from "./address.ts";

/** IP protocol numbers the filter names. */
export const IpProtocol = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;

/** TCP flag bits. */
export const TcpFlag = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

/** An IP packet inside a frame, as far as the filter reads it. */
export interface IpPacket {
  readonly kind: "ip";
  readonly version: 4 | 6;
  readonly srcMac: Uint8Array;
  readonly dstMac: Uint8Array;
  readonly src: Address;
  readonly dst: Address;
  readonly protocol: number;
  /** Ports for TCP and UDP; `undefined` for other protocols and later fragments. */
  readonly srcPort?: number;
  readonly dstPort?: number;
  /** TCP only. */
  readonly tcpFlags?: number;
  readonly seq?: number;
  readonly ackNumber?: number;
  /** ICMPv6 type, for neighbour discovery. */
  readonly icmpType?: number;
  /** What follows the TCP or UDP header. */
  readonly payload: Uint8Array;
}

/** What a frame holds. */
export type Frame =
  | IpPacket
  | { readonly kind: "arp" }
  /** QEMU's own announcement of the guest's MAC after a resume (reverse ARP). */
  | { readonly kind: "rarp" }
  | { readonly kind: "other"; readonly etherType: number }
  | { readonly kind: "malformed"; readonly reason: string };

/** Reads a frame. Never throws: anything it cannot follow is `malformed`. */
export function parseFrame(frame: Uint8Array): Frame {
  if (frame.length < 14) return { kind: "malformed", reason: "shorter than an Ethernet header" };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const etherType = view.getUint16(12);
  const dstMac = frame.subarray(0, 6);
  const srcMac = frame.subarray(6, 12);
  if (etherType === 0x0806) return { kind: "arp" };
  if (etherType === 0x8035) return { kind: "rarp" };
  if (etherType === 0x0800) return _ipv4(frame, view, srcMac, dstMac);
  if (etherType === 0x86dd) return _ipv6(frame, view, srcMac, dstMac);
  return { kind: "other", etherType };
}

function _ipv4(frame: Uint8Array, view: DataView, srcMac: Uint8Array, dstMac: Uint8Array): Frame {
  if (frame.length < 34) return { kind: "malformed", reason: "an IPv4 header cut short" };
  const first = frame[14];
  if (first >> 4 !== 4) return { kind: "malformed", reason: "an IPv4 frame that is not IPv4" };
  const headerLength = (first & 0xf) * 4;
  const total = view.getUint16(16);
  if (headerLength < 20 || total < headerLength || 14 + total > frame.length) {
    return { kind: "malformed", reason: "an IPv4 header with impossible lengths" };
  }
  const fragment = view.getUint16(20) & 0x1fff;
  const protocol = frame[23];
  const src = frame.slice(26, 30);
  const dst = frame.slice(30, 34);
  const body = frame.subarray(14 + headerLength, 14 + total);
  return _transport({ version: 4, srcMac, dstMac, src, dst, protocol }, body, fragment !== 0);
}

function _ipv6(frame: Uint8Array, view: DataView, srcMac: Uint8Array, dstMac: Uint8Array): Frame {
  if (frame.length < 54) return { kind: "malformed", reason: "an IPv6 header cut short" };
  if (frame[14] >> 4 !== 6) return { kind: "malformed", reason: "an IPv6 frame that is not IPv6" };
  const payloadLength = view.getUint16(18);
  if (54 + payloadLength > frame.length) return { kind: "malformed", reason: "an IPv6 payload cut short" };
  const src = frame.slice(22, 38);
  const dst = frame.slice(38, 54);
  let next = frame[20];
  let at = 54;
  const end = 54 + payloadLength;
  let later = false;
  // Extension headers: hop-by-hop, routing, fragment, destination options.
  for (let hops = 0; [0, 43, 44, 60].includes(next); hops++) {
    if (hops > 8 || at + 8 > end) return { kind: "malformed", reason: "IPv6 extension headers cut short" };
    if (next === 44) {
      later ||= (view.getUint16(at + 2) & 0xfff8) !== 0;
      next = frame[at];
      at += 8;
    } else {
      const length = (frame[at + 1] + 1) * 8;
      next = frame[at];
      at += length;
    }
  }
  if (at > end) return { kind: "malformed", reason: "IPv6 extension headers cut short" };
  return _transport({ version: 6, srcMac, dstMac, src, dst, protocol: next }, frame.subarray(at, end), later);
}

function _transport(
  ip: Pick<IpPacket, "version" | "srcMac" | "dstMac" | "src" | "dst" | "protocol">,
  body: Uint8Array,
  laterFragment: boolean,
): Frame {
  const base = { kind: "ip" as const, ...ip };
  if (laterFragment) return { ...base, payload: body };
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (ip.protocol === IpProtocol.tcp) {
    if (body.length < 20) return { kind: "malformed", reason: "a TCP header cut short" };
    const offset = (body[12] >> 4) * 4;
    if (offset < 20 || offset > body.length) {
      return { kind: "malformed", reason: "a TCP header with an impossible length" };
    }
    return {
      ...base,
      srcPort: view.getUint16(0),
      dstPort: view.getUint16(2),
      seq: view.getUint32(4),
      ackNumber: view.getUint32(8),
      tcpFlags: body[13],
      payload: body.subarray(offset),
    };
  }
  if (ip.protocol === IpProtocol.udp) {
    if (body.length < 8) return { kind: "malformed", reason: "a UDP header cut short" };
    return { ...base, srcPort: view.getUint16(0), dstPort: view.getUint16(2), payload: body.subarray(8) };
  }
  if (ip.protocol === IpProtocol.icmpv6 || ip.protocol === IpProtocol.icmp) {
    return { ...base, icmpType: body[0], payload: body };
  }
  return { ...base, payload: body };
}

/** A UDP datagram in a frame, with both checksums. */
export function buildUdpFrame(
  from: { readonly mac: Uint8Array; readonly address: Address; readonly port: number },
  to: { readonly mac: Uint8Array; readonly address: Address; readonly port: number },
  payload: Uint8Array,
): Uint8Array {
  const udp = new Uint8Array(8 + payload.length);
  const view = new DataView(udp.buffer);
  view.setUint16(0, from.port);
  view.setUint16(2, to.port);
  view.setUint16(4, udp.length);
  udp.set(payload, 8);
  return _ipFrame(from, to, IpProtocol.udp, udp, 6);
}

/** A TCP reset answering `packet` (a segment the guest sent), as if from its destination. */
export function buildTcpReset(packet: IpPacket): Uint8Array {
  const tcp = new Uint8Array(20);
  const view = new DataView(tcp.buffer);
  view.setUint16(0, packet.dstPort ?? 0);
  view.setUint16(2, packet.srcPort ?? 0);
  const flags = packet.tcpFlags ?? 0;
  const length = packet.payload.length + (flags & TcpFlag.syn ? 1 : 0) + (flags & TcpFlag.fin ? 1 : 0);
  if (flags & TcpFlag.ack) {
    view.setUint32(4, packet.ackNumber ?? 0);
    tcp[13] = TcpFlag.rst;
  } else {
    view.setUint32(8, ((packet.seq ?? 0) + length) >>> 0);
    tcp[13] = TcpFlag.rst | TcpFlag.ack;
  }
  tcp[12] = 5 << 4;
  return _ipFrame(
    { mac: packet.dstMac, address: packet.dst },
    { mac: packet.srcMac, address: packet.src },
    IpProtocol.tcp,
    tcp,
    16,
  );
}

function _ipFrame(
  from: { readonly mac: Uint8Array; readonly address: Address },
  to: { readonly mac: Uint8Array; readonly address: Address },
  protocol: number,
  segment: Uint8Array,
  checksumAt: number,
): Uint8Array {
  const v6 = from.address.length === 16;
  const header = v6 ? 40 : 20;
  const frame = new Uint8Array(14 + header + segment.length);
  const view = new DataView(frame.buffer);
  frame.set(to.mac, 0);
  frame.set(from.mac, 6);
  view.setUint16(12, v6 ? 0x86dd : 0x0800);
  if (v6) {
    frame[14] = 0x60;
    view.setUint16(18, segment.length);
    frame[20] = protocol;
    frame[21] = 64;
    frame.set(from.address, 22);
    frame.set(to.address, 38);
  } else {
    frame[14] = 0x45;
    view.setUint16(16, header + segment.length);
    view.setUint16(20, 0x4000);
    frame[22] = 64;
    frame[23] = protocol;
    frame.set(from.address, 26);
    frame.set(to.address, 30);
    view.setUint16(24, internetChecksum([frame.subarray(14, 34)]));
  }
  frame.set(segment, 14 + header);
  const pseudo = new Uint8Array(v6 ? 40 : 12);
  const pseudoView = new DataView(pseudo.buffer);
  pseudo.set(from.address, 0);
  pseudo.set(to.address, from.address.length);
  if (v6) {
    pseudoView.setUint32(32, segment.length);
    pseudo[39] = protocol;
  } else {
    pseudo[9] = protocol;
    pseudoView.setUint16(10, segment.length);
  }
  let sum = internetChecksum([pseudo, frame.subarray(14 + header)]);
  if (sum === 0 && protocol === IpProtocol.udp) sum = 0xffff;
  view.setUint16(14 + header + checksumAt, sum);
  return frame;
}

/** The ones' complement checksum of the parts, as if they were one run of bytes. */
export function internetChecksum(parts: readonly Uint8Array[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      if (odd === undefined) odd = part[i];
      else {
        sum += (odd << 8) | part[i];
        odd = undefined;
      }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
