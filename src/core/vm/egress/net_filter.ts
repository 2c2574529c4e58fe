/**
 * The egress filter process: one per running VM, started by the host agent
 * before QEMU. QEMU's network (`-netdev stream`) connects to its socket,
 * and it connects to passt's; both carry the same framing (a 4-byte
 * length, then an Ethernet frame). Every frame from the guest is judged
 * (`egress_filter.ts`); DNS is answered here, from the host's resolvers,
 * so that a resolver on the host's loopback (systemd-resolved) serves the
 * guest too. If this process dies, QEMU's network is cut: the guest is
 * left with no network, never an unfiltered one.
 *
 * @module
 */
import dgram from "node:dgram";
import { privateFileMode } from "../../store/file_modes.ts";
import { writeFileAtomic } from "../../store/atomic_write.ts";
import { type Address, type Cidr, formatAddress, parseAddress, parseCidr } from "./address.ts";
import { BlockedCounter } from "./blocked_log.ts";
import { dnsErrorAnswer, DnsFormatError, DnsRcode, filterDnsAnswer, parseDnsQuery } from "./dns_message.ts";
import { EgressFilter } from "./egress_filter.ts";
import type { IpPacket } from "./frame.ts";
import { filterFiles, type PolicyFile, readPolicyFile } from "./policy_file.ts";
import { allowedName, type HostView, keepsAnswer, mayResolve } from "./zone_policy.ts";

/** The largest frame either side may send; a larger length means the stream is not what it should be. */
const _maxFrame = 65_536 + 64;
/** The most DNS questions waiting for an upstream at once; more are dropped (the guest asks again). */
const _maxPendingDns = 64;
const _dnsTimeoutMs = 2_000;

/**
 * Runs the filter for the network directory `netDir` until QEMU's side
 * closes. `blockedLog` is the project's blocked log.
 *
 * @returns the process's exit code.
 */
export async function runNetFilter(netDir: string, blockedLog: string): Promise<number> {
  const files = filterFiles(netDir);
  let loaded: Awaited<ReturnType<typeof readPolicyFile>>;
  try {
    loaded = await readPolicyFile(netDir);
  } catch (error) {
    _say(`virtdev net filter: cannot read its policy: ${error}`);
    return 1;
  }
  let policyFile: PolicyFile = loaded.file;
  const filter = new EgressFilter(loaded.policy, hostView());
  const counter = await BlockedCounter.open(blockedLog);
  let dnsAnswered = 0;
  const report = async () => {
    await writeFileAtomic(
      files.report,
      `${
        JSON.stringify({
          pid: Deno.pid,
          serial: policyFile.serial,
          zone: policyFile.name,
          blocked: counter.total,
          dnsAnswered,
        })
      }\n`,
    ).catch(() => {});
  };
  const reload = async () => {
    try {
      const next = await readPolicyFile(netDir);
      policyFile = next.file;
      filter.setPolicy(next.policy);
    } catch (error) {
      _say(`virtdev net filter: keeping the policy in force: ${error}`);
    }
    await report();
  };
  Deno.addSignalListener("SIGHUP", () => void reload());

  await Deno.remove(files.guestSocket).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path: files.guestSocket });
  await Deno.chmod(files.guestSocket, privateFileMode);
  await report();
  const ticker = setInterval(async () => {
    const host = hostView();
    if (!_sameHost(host, filter.host)) filter.setHost(host);
    const before = counter.total;
    await counter.flush().catch(() => {});
    if (before > 0) await report();
  }, 1_000);

  let qemu: Deno.UnixConn;
  try {
    qemu = await listener.accept() as Deno.UnixConn;
  } finally {
    listener.close();
  }
  let passt: Deno.UnixConn;
  try {
    passt = await Deno.connect({ transport: "unix", path: `${netDir}/sock` });
  } catch (error) {
    _say(`virtdev net filter: cannot reach passt: ${error}`);
    qemu.close();
    clearInterval(ticker);
    return 1;
  }
  const toGuest = new _FrameWriter(qemu);
  // passt (before 2024) reads its stream as QEMU writes it, a frame per
  // write: a frame split across the socket's buffers desynchronises it.
  const toPasst = new _FrameWriter(passt, { framePerWrite: true });
  let pendingDns = 0;

  const answer = async (packet: IpPacket) => {
    if (pendingDns >= _maxPendingDns) return;
    pendingDns++;
    try {
      const message = await _answerDns(packet, filter, policyFile, (attempt) => counter.add(attempt));
      if (message) {
        dnsAnswered++;
        await toGuest.write([filter.dnsAnswerFrame(packet, message)]);
      }
    } catch {
      // The guest asks again.
    } finally {
      pendingDns--;
    }
  };

  const fromGuest = (async () => {
    for await (const batch of _frames(qemu)) {
      const out: Uint8Array[] = [];
      const back: Uint8Array[] = [];
      for (const frame of batch) {
        const outcome = filter.fromGuest(frame);
        out.push(...outcome.toPasst);
        back.push(...outcome.toGuest);
        if (outcome.blocked) counter.add(outcome.blocked);
        if (outcome.dns) answer(outcome.dns.packet);
      }
      if (back.length) toGuest.write(back).catch(() => {});
      if (out.length) await toPasst.write(out);
    }
  })();
  const fromPasst = (async () => {
    for await (const batch of _frames(passt)) {
      for (const frame of batch) filter.fromPasst(frame);
      await toGuest.write(batch);
    }
  })();
  // Either side closing ends both: no half-connected network.
  await Promise.race([fromGuest.catch(() => {}), fromPasst.catch(() => {})]);
  for (const conn of [qemu, passt]) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
  await Promise.allSettled([fromGuest, fromPasst]);
  clearInterval(ticker);
  await counter.flush().catch(() => {});
  await report();
  counter.close();
  return 0;
}

/** This host's own addresses (loopback aside) and the subnets they sit on. */
export function hostView(): HostView {
  let interfaces: Deno.NetworkInterfaceInfo[];
  try {
    interfaces = Deno.networkInterfaces();
  } catch {
    interfaces = [];
  }
  const addresses: Address[] = [];
  const subnets: Cidr[] = [];
  for (const entry of interfaces) {
    const address = parseAddress(entry.address.replace(/%.*$/, ""));
    if (!address) continue;
    if (address.length === 4 ? address[0] === 127 : entry.address === "::1") continue;
    addresses.push(address);
    const subnet = entry.cidr ? parseCidr(entry.cidr.replace(/%[^/]*/, "")) : undefined;
    // A host route (/32, /128) is the address itself; link-local is blocked by kind.
    if (subnet && subnet.bits < address.length * 8 && !(address[0] === 0xfe && (address[1] & 0xc0) === 0x80)) {
      subnets.push(subnet);
    }
  }
  return { addresses, subnets };
}

function _sameHost(a: HostView, b: HostView): boolean {
  const key = (view: HostView) =>
    JSON.stringify([view.addresses.map((x) => [...x]), view.subnets.map((s) => [[...s.base], s.bits])]);
  return key(a) === key(b);
}

/** The resolvers to ask: the policy's, or `/etc/resolv.conf`'s. */
export async function dnsUpstreams(policyFile: PolicyFile): Promise<{ host: string; port: number }[]> {
  const listed = policyFile.dnsUpstream ?? await _resolvConf();
  const out: { host: string; port: number }[] = [];
  for (const text of listed) {
    const bracket = /^\[([^\]]+)\]:([0-9]+)$/.exec(text);
    const plain = /^([0-9.]+):([0-9]+)$/.exec(text);
    const [host, port] = bracket ? [bracket[1], Number(bracket[2])] : plain ? [plain[1], Number(plain[2])] : [text, 53];
    if (parseAddress(host) && port > 0 && port < 65536) out.push({ host, port });
  }
  return out;
}

/** `/etc/resolv.conf` is read again at most this often: it changes when the host moves, not per question. */
const _resolvConfMs = 5_000;
let _resolvConfCache: { readonly at: number; readonly servers: string[] } | undefined;

async function _resolvConf(): Promise<string[]> {
  if (_resolvConfCache && Date.now() - _resolvConfCache.at < _resolvConfMs) return _resolvConfCache.servers;
  let servers: string[] = [];
  try {
    const text = await Deno.readTextFile("/etc/resolv.conf");
    servers = [...text.matchAll(/^\s*nameserver\s+([0-9a-fA-F.:]+)\s*$/gm)].map((m) => m[1]).slice(0, 3);
  } catch {
    // None: questions are answered SERVFAIL.
  }
  _resolvConfCache = { at: Date.now(), servers };
  return servers;
}

/** The guest's DNS question answered: refused, filtered, or a failure; `undefined` to stay silent. */
async function _answerDns(
  packet: IpPacket,
  filter: EgressFilter,
  policyFile: PolicyFile,
  blocked: (attempt: ReturnType<EgressFilter["refusedQuestion"]>) => void,
): Promise<Uint8Array | undefined> {
  let question;
  try {
    question = parseDnsQuery(packet.payload);
  } catch (error) {
    if (error instanceof DnsFormatError) return undefined;
    throw error;
  }
  const policy = filter.policy;
  if (!mayResolve(policy, question.name)) {
    blocked(filter.refusedQuestion(question));
    return dnsErrorAnswer(question, DnsRcode.refused);
  }
  const upstreams = await dnsUpstreams(policyFile);
  for (const upstream of upstreams) {
    let reply: Uint8Array;
    try {
      reply = await _ask(upstream, packet.payload);
    } catch {
      continue;
    }
    try {
      const name = question.name!;
      const pattern = allowedName(policy, name);
      const filtered = filterDnsAnswer(reply, question, (address) => keepsAnswer(policy, filter.host, name, address));
      for (const { address, ttl } of filtered.addresses) {
        filter.learn(address, { name, ...(pattern?.port ? { port: pattern.port } : {}) }, ttl);
      }
      for (const address of filtered.dropped) {
        blocked({
          protocol: "dns",
          target: `${name} → ${formatAddress(address)}`,
          name,
          port: 53,
          rule: "an answer into a blocked range (rebinding)",
        });
      }
      return filtered.message;
    } catch (error) {
      if (!(error instanceof DnsFormatError)) throw error;
    }
  }
  return dnsErrorAnswer(question, DnsRcode.servFail);
}

/** Asks one resolver over UDP. */
function _ask(upstream: { host: string; port: number }, query: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(upstream.host.includes(":") ? "udp6" : "udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("timeout"));
    }, _dnsTimeoutMs);
    socket.on("error", (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.on("message", (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(new Uint8Array(message));
    });
    socket.send(query, upstream.port, upstream.host);
  });
}

/** Frames as they arrive, in batches (all the complete frames one read brought). */
async function* _frames(conn: Deno.Conn): AsyncGenerator<Uint8Array[]> {
  let buffer = new Uint8Array(1 << 18);
  let start = 0;
  let end = 0;
  for (;;) {
    const batch: Uint8Array[] = [];
    while (end - start >= 4) {
      const length =
        ((buffer[start] << 24) | (buffer[start + 1] << 16) | (buffer[start + 2] << 8) | buffer[start + 3]) >>>
        0;
      if (length > _maxFrame) throw new Error(`a frame of ${length} bytes`);
      if (end - start < 4 + length) break;
      batch.push(buffer.slice(start + 4, start + 4 + length));
      start += 4 + length;
    }
    if (batch.length) yield batch;
    if (start === end) start = end = 0;
    if (buffer.length - end < _maxFrame + 4) {
      if (start > 0) {
        buffer.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      if (buffer.length - end < _maxFrame + 4) {
        const bigger = new Uint8Array(buffer.length * 2);
        bigger.set(buffer.subarray(0, end));
        buffer = bigger;
      }
    }
    const n = await conn.read(buffer.subarray(end));
    if (n === null) return;
    end += n;
  }
}

/**
 * Writes frames with their length prefix, in order: a batch in one write,
 * or, with `framePerWrite`, each frame in a write of its own (a unix
 * socket then queues it whole or not at all).
 */
class _FrameWriter {
  readonly #conn: Deno.Conn;
  readonly #framePerWrite: boolean;
  #chain: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn, options: { readonly framePerWrite?: boolean } = {}) {
    this.#conn = conn;
    this.#framePerWrite = options.framePerWrite ?? false;
  }

  write(frames: readonly Uint8Array[]): Promise<void> {
    const chunks = this.#framePerWrite ? frames.map((frame) => _framed([frame])) : [_framed(frames)];
    const next = this.#chain.then(async () => {
      for (const chunk of chunks) {
        let written = 0;
        while (written < chunk.length) written += await this.#conn.write(chunk.subarray(written));
      }
    });
    this.#chain = next.catch(() => {});
    return next;
  }
}

function _framed(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + 4 + f.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const frame of frames) {
    view.setUint32(at, frame.length);
    out.set(frame, at + 4);
    at += 4 + frame.length;
  }
  return out;
}

/** A line for the host agent, which shows the filter's stderr when it fails to start. */
function _say(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${text}\n`));
}
