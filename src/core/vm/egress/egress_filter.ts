/**
 * The decisions of the egress filter, frame by frame, without sockets:
 * what the guest sends is passed to passt, held, answered, or dropped;
 * what passt sends is passed to the guest and noted (connections coming
 * in through forwards may be answered whatever the zone).
 *
 * @module
 */
import { type Address, formatAddress } from "./address.ts";
import type { DnsQuestion } from "./dns_message.ts";
import { buildTcpReset, buildUdpFrame, type Frame, type IpPacket, IpProtocol, parseFrame, TcpFlag } from "./frame.ts";
import { PasstPacing, type TcpSegmentFlags } from "./passt_pacing.ts";
import { maxRequestHeadBytes, requestName } from "./request_name.ts";
import {
  allowedName,
  type EgressPolicy,
  type EgressRule,
  egressRules,
  type HostView,
  judge,
  type LearnedName,
} from "./zone_policy.ts";

/** One blocked attempt, for the blocked log. */
export interface BlockedAttempt {
  readonly protocol: string;
  /** The destination address, or the name asked for when DNS refused it. */
  readonly target: string;
  /** The name the address came from, or the name a request asked for. */
  readonly name?: string;
  readonly port?: number;
  /** The rule that dropped it. */
  readonly rule: string;
}

/** What to do with a frame from the guest. */
export interface GuestFrameOutcome {
  /** Frames to pass to passt, in order. */
  readonly toPasst: readonly Uint8Array[];
  /** Frames to send back to the guest (resets). */
  readonly toGuest: readonly Uint8Array[];
  /** A DNS query for the filter to answer. */
  readonly dns?: { readonly packet: IpPacket };
  readonly blocked?: BlockedAttempt;
}

interface _Flow {
  generation: number;
  /** `inspect`: the first bytes are held until they name what they ask for. */
  state: "open" | "inspect";
  nextSeq: number;
  head: Uint8Array[];
  held: Uint8Array[];
  headBytes: number;
  learned?: LearnedName;
}

/** The most connections remembered in each direction; the oldest go first. */
const _maxFlows = 8192;
/** The most addresses remembered from DNS answers. */
const _maxLearned = 8192;
/** The most bytes held for inspection across all connections; a connection that would pass it is reset. */
export const maxHeldBytes = 4 << 20;
/** The shortest time an answer's address stays allowed, whatever its TTL. */
export const minAnswerSeconds = 30;

const _none: GuestFrameOutcome = { toPasst: [], toGuest: [] };

/** The filter's state for one VM. */
export class EgressFilter {
  #policy: EgressPolicy;
  #host: HostView;
  #rules: EgressRule[];
  #generation = 0;
  readonly #now: () => number;
  readonly #outbound = new Map<string, _Flow>();
  readonly #inbound = new Map<string, number>();
  readonly #learned = new Map<string, LearnedName & { expires: number }>();
  #heldBytes = 0;
  readonly #pacing: PasstPacing;

  constructor(policy: EgressPolicy, host: HostView, options: { readonly now?: () => number } = {}) {
    this.#policy = policy;
    this.#host = host;
    this.#rules = egressRules(policy, host);
    this.#now = options.now ?? Date.now;
    this.#pacing = new PasstPacing({ now: this.#now });
  }

  /** The policy in force. */
  get policy(): EgressPolicy {
    return this.#policy;
  }

  /** The host as last seen. */
  get host(): HostView {
    return this.#host;
  }

  /** The rules in force. */
  get rules(): readonly EgressRule[] {
    return this.#rules;
  }

  /** A new policy: connections already open are judged again by their next packet. */
  setPolicy(policy: EgressPolicy): void {
    this.#policy = policy;
    this.#rules = egressRules(policy, this.#host);
    this.#generation++;
  }

  /** The host's addresses changed (a VPN came up, the laptop moved). */
  setHost(host: HostView): void {
    this.#host = host;
    this.#rules = egressRules(this.#policy, host);
    this.#generation++;
  }

  /** Remembers that `address` came from `name` in an answer valid for `ttl` seconds. */
  learn(address: Address, learned: LearnedName, ttl: number): void {
    const key = formatAddress(address);
    this.#learned.delete(key);
    this.#learned.set(key, { ...learned, expires: this.#now() + Math.max(ttl, minAnswerSeconds) * 1000 });
    _bound(this.#learned, _maxLearned);
  }

  /** The name `address` was learned from, while its answer is valid. */
  learnedName(address: Address): (LearnedName & { expires: number }) | undefined {
    const entry = this.#learned.get(formatAddress(address));
    return entry && entry.expires > this.#now() ? entry : undefined;
  }

  /** A frame from passt, on its way to the guest. */
  fromPasst(frame: Uint8Array): void {
    const packet = parseFrame(frame);
    if (packet.kind !== "ip" || packet.protocol !== IpProtocol.tcp) return;
    const flags = _segmentFlags(packet.tcpFlags ?? 0);
    const opening = flags.syn && !flags.ack;
    if (!opening && !this.#pacing.busy) return;
    const key = _key(packet.dst, packet.src, packet.dstPort, packet.srcPort);
    this.#pacing.fromPasst(key, flags);
    // A connection that passt opens into the guest (a forward).
    if (opening) {
      this.#inbound.delete(key);
      this.#inbound.set(key, this.#now());
      _bound(this.#inbound, _maxFlows);
    }
  }

  /** A frame from the guest. */
  fromGuest(frame: Uint8Array): GuestFrameOutcome {
    const packet = parseFrame(frame);
    const outcome = this.#judge(packet, frame);
    if (outcome.toPasst.length === 0 || packet.kind !== "ip" || packet.protocol !== IpProtocol.tcp) return outcome;
    const flags = _segmentFlags(packet.tcpFlags ?? 0);
    if (!flags.syn && !flags.fin && !this.#pacing.busy) return outcome;
    return this.#pacing.fromGuest(_flowKey(packet), flags) ? outcome : { ...outcome, toPasst: [] };
  }

  #judge(packet: Frame, frame: Uint8Array): GuestFrameOutcome {
    // ARP and reverse ARP reach passt only, which answers ARP and drops the rest; each frame tells it the
    // guest's MAC. A resumed guest says nothing until spoken to, and passt, new after a resume, sends to the
    // broadcast MAC until it learns the guest's, which TCP in the guest discards: QEMU's reverse-ARP
    // announcements after the load are what teach it.
    if (packet.kind === "arp" || packet.kind === "rarp") return { toPasst: [frame], toGuest: [] };
    if (packet.kind !== "ip") return _none;
    if (_isControl(packet)) return { toPasst: [frame], toGuest: [] };
    const isTcp = packet.protocol === IpProtocol.tcp;
    if (packet.protocol === IpProtocol.udp && packet.dstPort === 53) {
      return this.#policy.zone === "none"
        ? { ..._none, blocked: this.#attempt(packet, "everything (zone none)") }
        : { ..._none, dns: { packet } };
    }
    if (isTcp && this.#inbound.has(_key(packet.src, packet.dst, packet.srcPort, packet.dstPort))) {
      return { toPasst: [frame], toGuest: [] };
    }
    const flowKey = _flowKey(packet);
    const flow = isTcp ? this.#outbound.get(flowKey) : undefined;
    const flags = packet.tcpFlags ?? 0;
    if (flow && flow.generation !== this.#generation) {
      const again = judge(this.#rules, packet.dst, packet.dstPort, this.learnedName(packet.dst) ?? flow.learned);
      if (!again.allow) {
        this.#forget(flowKey);
        return { toPasst: [], toGuest: [buildTcpReset(packet)], blocked: this.#attempt(packet, again.rule) };
      }
      flow.generation = this.#generation;
    }
    if (flow) {
      // After a FIN the last ACKs still come: the flow stays until a reset or the table's bound.
      if (flags & TcpFlag.rst) this.#forget(flowKey);
      return flow.state === "open" ? { toPasst: [frame], toGuest: [] } : this.#inspect(flow, flowKey, packet, frame);
    }
    const learned = this.learnedName(packet.dst);
    const verdict = judge(this.#rules, packet.dst, packet.dstPort, learned);
    if (!verdict.allow || (verdict.byName && !isTcp)) {
      const rule = verdict.allow ? "by name, TCP only (zone allow)" : verdict.rule;
      const reset = isTcp && !(flags & TcpFlag.rst) ? [buildTcpReset(packet)] : [];
      return { toPasst: [], toGuest: reset, blocked: this.#attempt(packet, rule) };
    }
    if (isTcp && !(flags & TcpFlag.rst)) {
      const opening = (flags & TcpFlag.syn) !== 0 && !(flags & TcpFlag.ack);
      this.#outbound.set(flowKey, {
        generation: this.#generation,
        // A connection met in the middle (after a restart of the filter) cannot be inspected.
        state: verdict.byName ? (opening ? "inspect" : "open") : "open",
        nextSeq: ((packet.seq ?? 0) + (opening ? 1 : 0)) >>> 0,
        head: [],
        held: [],
        headBytes: 0,
        learned,
      });
      this.#boundOutbound();
      if (verdict.byName && !opening) {
        this.#forget(flowKey);
        // A stray ACK or FIN of a connection already ended: nothing to tell.
        if (packet.payload.length === 0) return _none;
        return { toPasst: [], toGuest: [buildTcpReset(packet)], blocked: this.#attempt(packet, "by name, mid-stream") };
      }
    }
    return { toPasst: [frame], toGuest: [] };
  }

  /** The DNS answer `message` for the query `query`, as a frame to the guest. */
  dnsAnswerFrame(query: IpPacket, message: Uint8Array): Uint8Array {
    return buildUdpFrame(
      { mac: query.dstMac, address: query.dst, port: query.dstPort ?? 53 },
      { mac: query.srcMac, address: query.src, port: query.srcPort ?? 0 },
      message,
    );
  }

  /** A blocked attempt at `packet`'s destination. */
  #attempt(packet: IpPacket, rule: string, name?: string): BlockedAttempt {
    return {
      protocol: _protocolName(packet.protocol),
      target: formatAddress(packet.dst),
      name: name ?? this.learnedName(packet.dst)?.name,
      port: packet.dstPort,
      rule,
    };
  }

  /** A DNS question the zone refuses. */
  refusedQuestion(question: DnsQuestion): BlockedAttempt {
    return { protocol: "dns", target: question.name ?? question.shown, port: 53, rule: "not in the allowlist" };
  }

  /** Bytes held for inspection now (for tests and the bench). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  #forget(flowKey: string): void {
    const flow = this.#outbound.get(flowKey);
    if (flow) this.#heldBytes -= flow.held.reduce((n, f) => n + f.length, 0);
    this.#outbound.delete(flowKey);
  }

  #boundOutbound(): void {
    while (this.#outbound.size > _maxFlows) this.#forget(this.#outbound.keys().next().value as string);
  }

  #inspect(flow: _Flow, flowKey: string, packet: IpPacket, frame: Uint8Array): GuestFrameOutcome {
    if (packet.payload.length === 0) return { toPasst: [frame], toGuest: [] };
    if (packet.seq !== flow.nextSeq) return _none;
    if (this.#heldBytes + frame.length > maxHeldBytes) {
      // A guest that opens connections only to fill this process: they end.
      this.#forget(flowKey);
      return {
        toPasst: [],
        toGuest: [buildTcpReset(packet)],
        blocked: this.#attempt(packet, "too much held for inspection"),
      };
    }
    this.#heldBytes += frame.length;
    flow.head.push(packet.payload.slice());
    flow.held.push(frame);
    flow.headBytes += packet.payload.length;
    flow.nextSeq = (flow.nextSeq + packet.payload.length) >>> 0;
    const head = new Uint8Array(flow.headBytes);
    let at = 0;
    for (const part of flow.head) {
      head.set(part, at);
      at += part.length;
    }
    const said = requestName(head);
    if (said.kind === "incomplete" && flow.headBytes < maxRequestHeadBytes && flow.held.length < 16) return _none;
    if (said.kind === "other") return this.#release(flow);
    const name = said.kind === "incomplete" ? undefined : said.name;
    const pattern = name === undefined ? undefined : allowedName(this.#policy, name);
    if (pattern && (pattern.port === undefined || pattern.port === packet.dstPort)) return this.#release(flow);
    this.#forget(flowKey);
    return {
      toPasst: [],
      toGuest: [buildTcpReset(packet)],
      blocked: this.#attempt(
        packet,
        name === undefined ? "a request that names no allowed name" : "a request for a name not in the allowlist",
        name ?? `(none; the address came from ${flow.learned?.name ?? "DNS"})`,
      ),
    };
  }

  #release(flow: _Flow): GuestFrameOutcome {
    flow.state = "open";
    const held = flow.held;
    this.#heldBytes -= held.reduce((n, f) => n + f.length, 0);
    flow.held = [];
    flow.head = [];
    return { toPasst: held, toGuest: [] };
  }
}

/** Frames passt answers itself, never forwarded: ARP's IP kin (DHCP, DHCPv6, neighbour discovery). */
function _isControl(packet: IpPacket): boolean {
  const dst = packet.dst;
  if (packet.protocol === IpProtocol.udp) {
    if (packet.version === 4 && packet.srcPort === 68 && packet.dstPort === 67) return dst.every((b) => b === 255);
    if (packet.version === 6 && packet.srcPort === 546 && packet.dstPort === 547) {
      return formatAddress(dst) === "ff02::1:2";
    }
    return false;
  }
  if (packet.protocol === IpProtocol.icmpv6 && packet.version === 6) {
    const type = packet.icmpType ?? 0;
    const local = (dst[0] === 0xfe && (dst[1] & 0xc0) === 0x80) || (dst[0] === 0xff && (dst[1] & 0x0f) === 0x02);
    // Neighbour discovery (133-137) and multicast listener reports (130-132, 143).
    return local && ((type >= 130 && type <= 137) || type === 143);
  }
  return false;
}

function _segmentFlags(flags: number): TcpSegmentFlags {
  return {
    syn: (flags & TcpFlag.syn) !== 0,
    ack: (flags & TcpFlag.ack) !== 0,
    fin: (flags & TcpFlag.fin) !== 0,
    rst: (flags & TcpFlag.rst) !== 0,
  };
}

function _protocolName(protocol: number): string {
  switch (protocol) {
    case IpProtocol.tcp:
      return "tcp";
    case IpProtocol.udp:
      return "udp";
    case IpProtocol.icmp:
    case IpProtocol.icmpv6:
      return "icmp";
    default:
      return `ip-${protocol}`;
  }
}

function _key(guest: Address, peer: Address, guestPort?: number, peerPort?: number): string {
  return `${formatAddress(guest)}|${guestPort}|${formatAddress(peer)}|${peerPort}`;
}

function _flowKey(packet: IpPacket): string {
  return _key(packet.src, packet.dst, packet.srcPort, packet.dstPort);
}

function _bound<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) map.delete(map.keys().next().value as K);
}
