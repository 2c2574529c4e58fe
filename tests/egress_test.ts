/**
 * The egress filter's parts without sockets: patterns, ranges, DNS
 * answers, the rules of each zone, and the filter's decisions on frames a
 * hostile guest (root, raw sockets) can craft.
 */
import assert from "node:assert/strict";
import { addressKind, formatAddress, inCidr, parseAddress, parseCidr } from "../src/core/vm/egress/address.ts";
import {
  expandSets,
  formatAllowPattern,
  parseAllowFile,
  parseAllowPattern,
} from "../src/core/vm/egress/allow_pattern.ts";
import { DnsFormatError, filterDnsAnswer, parseDnsQuery } from "../src/core/vm/egress/dns_message.ts";
import { EgressFilter, maxHeldBytes } from "../src/core/vm/egress/egress_filter.ts";
import { passtAnswerMs } from "../src/core/vm/egress/passt_pacing.ts";
import { parseFrame, TcpFlag } from "../src/core/vm/egress/frame.ts";
import { requestName } from "../src/core/vm/egress/request_name.ts";
import { type EgressPolicy, egressRules, judge, keepsAnswer } from "../src/core/vm/egress/zone_policy.ts";
import { clientHello, dnsAnswer, dnsQuery, tcpFrame, udpFrame } from "./_frames.ts";

const host = {
  addresses: [parseAddress("192.0.2.2")!, parseAddress("fd00::2")!, parseAddress("2001:db8:1::2")!],
  subnets: [parseCidr("192.0.2.0/24")!, parseCidr("2001:db8:1::/64")!],
};
const policy = (zone: EgressPolicy["zone"], allowed: string[] = []): EgressPolicy => ({
  zone,
  name: zone,
  allowed: expandSets(allowed.map(parseAllowPattern)),
});

Deno.test("patterns: names, wildcards, IDN, trailing dots, ports, addresses, blocks, sets", () => {
  const show = (text: string) => formatAllowPattern(parseAllowPattern(text));
  assert.equal(show("Example.ORG."), "example.org");
  assert.equal(show("*.example.org:443"), "*.example.org:443");
  assert.equal(show("bücher.example"), "xn--bcher-kva.example");
  assert.equal(show("203.0.113.7"), "203.0.113.7");
  assert.equal(show("10.1.2.0/24:5432"), "10.1.2.0/24:5432");
  assert.equal(show("10.1.2.9/24"), "10.1.2.0/24");
  assert.equal(show("[2001:db8::1]:443"), "[2001:db8::1]:443");
  assert.equal(show("2001:DB8::/32"), "2001:db8::/32");
  assert.equal(show("debian"), "@debian");
  assert.equal(show("@npm"), "@npm");
  for (
    const bad of [
      "",
      "localhost",
      "exa mple.org",
      "*.",
      "a..b",
      "1.2.3.4/33",
      "1.2.3.256",
      "x.org:0",
      "x.org:70000",
      "@nope",
      "ex*ample.org",
      "http://x.org",
    ]
  ) {
    assert.throws(() => parseAllowPattern(bad), Error, bad);
  }
  const file = parseAllowFile("# comment\ndeb.debian.org\n\n*.bad*.org\n10.0.0.0/8 # db\nnot a name\n");
  assert.equal(file.patterns.length, 2);
  assert.deepEqual(file.problems.map((p) => p.line), [4, 6]);
  const expanded = expandSets([parseAllowPattern("@debian")]).map(formatAllowPattern);
  assert.ok(expanded.includes("deb.debian.org"));
});

Deno.test("ranges: v4, v6, IPv4 inside IPv6, and what each is", () => {
  const kind = (text: string) => addressKind(parseAddress(text)!);
  assert.equal(kind("127.0.0.1"), "loopback");
  assert.equal(kind("127.255.0.9"), "loopback");
  assert.equal(kind("0.0.0.0"), "unspecified");
  assert.equal(kind("10.1.2.3"), "private");
  assert.equal(kind("172.31.0.1"), "private");
  assert.equal(kind("172.32.0.1"), "public");
  assert.equal(kind("192.168.1.1"), "private");
  assert.equal(kind("169.254.169.254"), "link-local");
  assert.equal(kind("100.64.0.1"), "cgnat");
  assert.equal(kind("100.128.0.1"), "public");
  assert.equal(kind("224.0.0.251"), "multicast");
  assert.equal(kind("255.255.255.255"), "broadcast");
  assert.equal(kind("1.1.1.1"), "public");
  assert.equal(kind("::1"), "loopback");
  assert.equal(kind("::"), "unspecified");
  assert.equal(kind("fe80::1"), "link-local");
  assert.equal(kind("fd12::1"), "ula");
  assert.equal(kind("fc00::1"), "ula");
  assert.equal(kind("ff02::1"), "multicast");
  assert.equal(kind("2606:4700::1111"), "public");
  assert.equal(kind("::ffff:127.0.0.1"), "loopback", "IPv4-mapped loopback");
  assert.equal(kind("::ffff:10.0.0.1"), "private");
  assert.equal(kind("::127.0.0.1"), "loopback", "IPv4-compatible loopback");
  assert.equal(formatAddress(parseAddress("2001:db8:0:0:1:0:0:1")!), "2001:db8::1:0:0:1");
  assert.equal(formatAddress(parseAddress("::ffff:1.2.3.4")!), "::ffff:1.2.3.4");
  for (const bad of ["1.2.3", "01.2.3.4", "1::2::3", "12345::", "1.2.3.4.5", "::g"]) {
    assert.equal(parseAddress(bad), undefined, bad);
  }
  assert.ok(inCidr(parseAddress("10.9.8.7")!, parseCidr("10.0.0.0/8")!));
  assert.ok(!inCidr(parseAddress("11.0.0.1")!, parseCidr("10.0.0.0/8")!));
  assert.ok(!inCidr(parseAddress("::ffff:10.0.0.1")!, parseCidr("10.0.0.0/8")!), "families never mix in a block");
});

Deno.test("the rules each zone stands for, in order; the loopback rule comes first in every zone", () => {
  const rendered = (zone: EgressPolicy["zone"], allowed: string[] = []) =>
    egressRules(policy(zone, allowed), host).map((r) => `${r.action} ${r.matches}`);
  for (const zone of ["none", "allow", "wan", "lan", "full"] as const) {
    const rules = rendered(zone);
    assert.match(rules[0], /^drop the host's loopback/);
    assert.match(rules[1], /^drop unspecified/);
  }
  assert.deepEqual(rendered("none").slice(3), ["drop everything (zone none)"]);
  assert.deepEqual(rendered("allow", ["deb.debian.org", "10.0.0.5:5432"]).slice(3), [
    "allow 10.0.0.5/32 port 5432 (allowlist)",
    "allow addresses the filter's DNS gave for allowed names, for their TTL (1 names)",
    "drop everything else (zone allow)",
  ]);
  assert.deepEqual(rendered("wan").slice(3), [
    "drop this host's own addresses (192.0.2.2, fd00::2, 2001:db8:1::2)",
    "drop private, link-local (169.254.169.254 too), CGNAT, ULA and reserved ranges",
    "drop this host's LAN (192.0.2.0/24, 2001:db8:1::/64)",
    "allow the internet (zone wan)",
  ]);
  assert.deepEqual(rendered("lan").slice(3), [
    "drop this host's own addresses (192.0.2.2, fd00::2, 2001:db8:1::2)",
    "allow the internet and the LAN (zone lan)",
  ]);
  assert.deepEqual(rendered("full").slice(3), [
    "allow the internet, the LAN and this host's other addresses (zone full)",
  ]);
  const verdict = (zone: EgressPolicy["zone"], address: string, port?: number) =>
    judge(egressRules(policy(zone, ["10.0.0.5:5432"]), host), parseAddress(address)!, port, undefined).allow;
  assert.equal(verdict("wan", "203.0.113.80"), true);
  assert.equal(verdict("wan", "10.9.9.9"), false);
  assert.equal(verdict("wan", "10.0.0.5", 5432), true, "the allowlist on top of wan");
  assert.equal(verdict("wan", "10.0.0.5", 22), false, "only its port");
  assert.equal(verdict("wan", "192.0.2.99"), false, "the host's LAN, though not a private range");
  assert.equal(verdict("wan", "2001:db8:1::99"), false);
  assert.equal(verdict("lan", "192.0.2.99"), true);
  assert.equal(verdict("lan", "192.0.2.2"), false, "the host itself");
  assert.equal(verdict("full", "192.0.2.2"), true);
  assert.equal(verdict("full", "127.0.0.1"), false);
  assert.equal(verdict("full", "::ffff:127.0.0.1"), false);
});

Deno.test("DNS: the question's CNAME chain and allowed addresses stay; rebinding answers, other names and glue go", () => {
  const query = dnsQuery("deb.debian.org");
  const question = parseDnsQuery(query);
  assert.equal(question.name, "deb.debian.org");
  const answer = dnsAnswer(query, [
    ["deb.debian.org", 5, 300, "debian.map.fastly.net"],
    ["debian.map.fastly.net", 1, 60, new Uint8Array([151, 101, 2, 132])],
    ["debian.map.fastly.net", 1, 60, new Uint8Array([192, 168, 1, 1])],
    ["elsewhere.example", 1, 60, new Uint8Array([1, 2, 3, 4])],
  ]);
  const p = policy("wan");
  const filtered = filterDnsAnswer(answer, question, (a) => keepsAnswer(p, host, "deb.debian.org", a));
  assert.deepEqual(filtered.addresses.map((a) => [formatAddress(a.address), a.ttl]), [["151.101.2.132", 60]]);
  assert.deepEqual(filtered.dropped.map(formatAddress), ["192.168.1.1"]);
  const reread = new DataView(filtered.message.buffer);
  assert.equal(reread.getUint16(6), 2, "the CNAME and one address");
  assert.equal(reread.getUint16(0), 0x1234);
  // An exact allowlist name may point into the LAN on purpose; a wildcard may not.
  assert.ok(keepsAnswer(policy("allow", ["db.corp.example"]), host, "db.corp.example", parseAddress("10.1.1.1")!));
  assert.ok(!keepsAnswer(policy("allow", ["*.corp.example"]), host, "x.corp.example", parseAddress("10.1.1.1")!));
  assert.ok(!keepsAnswer(policy("full", ["db.corp.example"]), host, "db.corp.example", parseAddress("127.0.0.1")!));
});

Deno.test("DNS: malformed and truncated upstream answers are refused, never followed", () => {
  const query = dnsQuery("example.org");
  const question = parseDnsQuery(query);
  const good = dnsAnswer(query, [["example.org", 1, 60, new Uint8Array([93, 184, 216, 34])]]);
  for (let cut = 0; cut < good.length; cut++) {
    assert.throws(() => filterDnsAnswer(good.slice(0, cut), question, () => true), DnsFormatError, `cut at ${cut}`);
  }
  const loop = new Uint8Array([
    ...good.slice(0, query.length),
    0xc0,
    query.length,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    60,
    0,
    4,
    1,
    2,
    3,
    4,
  ]);
  loop[7] = 1;
  assert.throws(() => filterDnsAnswer(loop, question, () => true), DnsFormatError, "a pointer to itself");
  const otherId = good.slice();
  otherId[0] ^= 0xff;
  assert.throws(() => filterDnsAnswer(otherId, question, () => true), DnsFormatError);
  const otherName = dnsAnswer(dnsQuery("example.net"), []);
  assert.throws(() => filterDnsAnswer(otherName, question, () => true), DnsFormatError);
  const badLength = dnsAnswer(query, [["example.org", 1, 60, new Uint8Array([1, 2, 3])]]);
  assert.throws(() => filterDnsAnswer(badLength, question, () => true), DnsFormatError);
  const truncated = filterDnsAnswer(dnsAnswer(query, [], { flags: 0x8380 }), question, () => true);
  assert.ok(truncated.message[2] & 0x02, "TC passes on");
  assert.throws(() => parseDnsQuery(good), DnsFormatError, "an answer is not a question");
  assert.throws(() => parseDnsQuery(new Uint8Array(5)), DnsFormatError);
  const weird = parseDnsQuery(dnsQuery("a\x1b]0;x.org"));
  assert.equal(weird.name, undefined);
  assert.ok(!weird.shown.includes("\x1b"), weird.shown);
});

Deno.test("request names: TLS server name (over several segments) and HTTP Host", () => {
  assert.deepEqual(requestName(clientHello("registry.npmjs.org")), { kind: "tls", name: "registry.npmjs.org" });
  const big = clientHello("deb.debian.org", 3000);
  assert.deepEqual(requestName(big.slice(0, 1400)), { kind: "incomplete" });
  assert.deepEqual(requestName(big), { kind: "tls", name: "deb.debian.org" });
  const http = new TextEncoder().encode("GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Deb.Debian.org:80\r\n\r\n");
  assert.deepEqual(requestName(http), { kind: "http", name: "deb.debian.org" });
  assert.deepEqual(requestName(http.slice(0, 20)), { kind: "incomplete" });
  assert.deepEqual(requestName(new TextEncoder().encode("GE")), { kind: "incomplete" });
  assert.deepEqual(requestName(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")), { kind: "http", name: undefined });
  assert.deepEqual(requestName(new TextEncoder().encode("SSH-2.0-OpenSSH_9\r\n")), { kind: "other" });
});

Deno.test("ARP and QEMU's reverse-ARP announcements reach passt (it learns the guest's MAC from them) in every zone; other link types do not", () => {
  const frameOf = (etherType: number) => {
    const frame = new Uint8Array(60);
    frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56], 0);
    new DataView(frame.buffer).setUint16(12, etherType);
    return frame;
  };
  for (const zone of ["none", "allow", "wan", "lan", "full"] as const) {
    const filter = new EgressFilter(policy(zone, []), host);
    assert.equal(filter.fromGuest(frameOf(0x0806)).toPasst.length, 1, `${zone}: ARP`);
    assert.equal(filter.fromGuest(frameOf(0x8035)).toPasst.length, 1, `${zone}: RARP`);
    for (const other of [0x88cc, 0x8100, 0x88b5]) {
      assert.equal(filter.fromGuest(frameOf(other)).toPasst.length, 0, `${zone}: ${other.toString(16)}`);
    }
  }
  assert.deepEqual(parseFrame(frameOf(0x8035)), { kind: "rarp" });
});

Deno.test("a hostile guest's crafted frames: nothing reaches the host's loopback or itself, in any zone", () => {
  const targets = [
    "127.0.0.1",
    "127.1.2.3",
    "0.0.0.0",
    "192.0.2.2",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "fd00::2",
  ];
  for (const zone of ["none", "allow", "wan", "lan", "full"] as const) {
    const filter = new EgressFilter(policy(zone, ["@debian"]), host);
    for (const dst of targets) {
      const v6 = dst.includes(":");
      const frame = tcpFrame({
        src: v6 ? "fd00::2" : "192.0.2.2",
        dst,
        srcPort: 40000,
        dstPort: 8080,
        flags: TcpFlag.syn,
      });
      const outcome = filter.fromGuest(frame);
      const hostItself = dst === "192.0.2.2" || dst === "fd00::2";
      if (zone === "full" && hostItself) {
        assert.equal(outcome.toPasst.length, 1, `${zone} lets the host's own non-loopback address through`);
        continue;
      }
      assert.equal(outcome.toPasst.length, 0, `${zone}: a SYN to ${dst} passed`);
      assert.ok(outcome.blocked, `${zone}: ${dst} not logged`);
      assert.equal(outcome.toGuest.length, 1, "the guest gets a reset, not a timeout");
      const reset = parseFrame(outcome.toGuest[0]);
      assert.ok(reset.kind === "ip" && (reset.tcpFlags! & TcpFlag.rst));
      // A packet in mid-stream (no SYN) is judged the same way.
      const mid = tcpFrame({
        src: v6 ? "fd00::2" : "192.0.2.2",
        dst,
        srcPort: 40001,
        dstPort: 8080,
        flags: TcpFlag.ack,
        payload: new Uint8Array(10),
      });
      assert.equal(filter.fromGuest(mid).toPasst.length, 0);
      // UDP too.
      const udp = filter.fromGuest(udpFrame(v6 ? "fd00::2" : "192.0.2.2", dst, 5000, 9999, new Uint8Array(4)));
      assert.equal(udp.toPasst.length, 0, `${zone}: UDP to ${dst} passed`);
    }
    // DHCP and ARP go to passt (it answers them itself); DNS is answered by the filter, in any zone but none.
    assert.equal(
      filter.fromGuest(udpFrame("0.0.0.0", "255.255.255.255", 68, 67, new Uint8Array(300))).toPasst.length,
      1,
    );
    assert.equal(
      filter.fromGuest(udpFrame("0.0.0.0", "127.0.0.1", 68, 67, new Uint8Array(300))).toPasst.length,
      0,
      "DHCP to loopback is not DHCP",
    );
    const dns = filter.fromGuest(udpFrame("192.0.2.2", "127.0.0.1", 5353, 53, dnsQuery("deb.debian.org")));
    assert.equal(dns.toPasst.length, 0, "DNS never goes to passt, wherever it is sent");
    assert.equal(dns.dns !== undefined, zone !== "none");
  }
});

Deno.test("zone allow: an address learned from an allowed name opens for requests naming an allowed name only", () => {
  const filter = new EgressFilter(policy("allow", ["@debian"]), host);
  const mirror = parseAddress("203.0.113.80")!;
  // passt answers each SYN that reaches it, as it does (the handshake gate waits for that answer).
  const syn = (port: number, dst = "203.0.113.80") => {
    const outcome = filter.fromGuest(
      tcpFrame({ src: "192.0.2.2", dst, srcPort: port, dstPort: 80, flags: TcpFlag.syn, seq: 100 }),
    );
    if (outcome.toPasst.length > 0) {
      filter.fromPasst(
        tcpFrame({ src: dst, dst: "192.0.2.2", srcPort: 80, dstPort: port, flags: TcpFlag.syn | TcpFlag.ack }),
      );
    }
    return outcome;
  };
  assert.equal(syn(40000).toPasst.length, 0, "an IP literal nobody resolved");
  filter.learn(mirror, { name: "deb.debian.org" }, 300);
  assert.equal(syn(40001).toPasst.length, 1);
  const data = (port: number, text: string, seq = 101) =>
    filter.fromGuest(
      tcpFrame({
        src: "192.0.2.2",
        dst: "203.0.113.80",
        srcPort: port,
        dstPort: 80,
        flags: TcpFlag.ack | TcpFlag.psh,
        seq,
        payload: new TextEncoder().encode(text),
      }),
    );
  const good = data(40001, "GET /debian/dists/bookworm/InRelease HTTP/1.1\r\nHost: deb.debian.org\r\n\r\n");
  assert.equal(good.toPasst.length, 1);
  assert.equal(data(40001, "more", 101 + 68).toPasst.length, 1, "then the connection flows");
  // The same address asked for another name (a shared CDN address, a proxy): reset and logged.
  assert.equal(syn(40002).toPasst.length, 1);
  const other = data(40002, "GET / HTTP/1.1\r\nHost: registry.npmjs.org\r\n\r\n");
  assert.equal(other.toPasst.length, 0);
  assert.equal(other.toGuest.length, 1);
  assert.equal(other.blocked?.name, "registry.npmjs.org");
  assert.equal(syn(40003).toPasst.length, 1);
  const literal = data(40003, "GET / HTTP/1.1\r\nHost: 203.0.113.80\r\n\r\n");
  assert.equal(literal.toPasst.length, 0, "an IP literal as the Host");
  // A request split over segments is held until it names its host.
  assert.equal(syn(40004).toPasst.length, 1);
  const hello = clientHello("deb.debian.org", 2000);
  const first = filter.fromGuest(
    tcpFrame({
      src: "192.0.2.2",
      dst: "203.0.113.80",
      srcPort: 40004,
      dstPort: 80,
      flags: TcpFlag.ack,
      seq: 101,
      payload: hello.slice(0, 1400),
    }),
  );
  assert.equal(first.toPasst.length, 0, "held");
  const second = filter.fromGuest(
    tcpFrame({
      src: "192.0.2.2",
      dst: "203.0.113.80",
      srcPort: 40004,
      dstPort: 80,
      flags: TcpFlag.ack,
      seq: 1501,
      payload: hello.slice(1400),
    }),
  );
  assert.equal(second.toPasst.length, 2, "both released, in order");
  // UDP (QUIC) to a learned address is not let through: the name cannot be checked.
  assert.equal(
    filter.fromGuest(udpFrame("192.0.2.2", "203.0.113.80", 5000, 443, new Uint8Array(1200))).toPasst.length,
    0,
  );
  // A switch to wan applies to open connections at their next packet.
  filter.setPolicy(policy("none"));
  assert.equal(data(40001, "late", 101 + 72).toPasst.length, 0);
});

Deno.test("connections that come in through forwards are answered in every zone", () => {
  const filter = new EgressFilter(policy("none"), host);
  // passt opens a connection into the guest from the host's loopback side.
  filter.fromPasst(
    tcpFrame({
      src: "192.0.2.1",
      dst: "192.0.2.2",
      srcPort: 51000,
      dstPort: 22,
      flags: TcpFlag.syn,
      fromMac: new Uint8Array(6),
      toMac: new Uint8Array(6),
    }),
  );
  const reply = filter.fromGuest(
    tcpFrame({ src: "192.0.2.2", dst: "192.0.2.1", srcPort: 22, dstPort: 51000, flags: TcpFlag.syn | TcpFlag.ack }),
  );
  assert.equal(reply.toPasst.length, 1);
  const forged = filter.fromGuest(
    tcpFrame({ src: "192.0.2.2", dst: "192.0.2.1", srcPort: 22, dstPort: 51001, flags: TcpFlag.syn }),
  );
  assert.equal(forged.toPasst.length, 0, "another port of the same peer is not a reply");
});

Deno.test("a guest that opens connections only to fill the filter with held bytes meets a bound", () => {
  const filter = new EgressFilter(policy("allow", ["deb.debian.org"]), host);
  filter.learn(parseAddress("203.0.113.80")!, { name: "deb.debian.org" }, 300);
  // Each connection sends the start of a TLS record that never names a host.
  const partial = clientHello("deb.debian.org", 60_000).slice(0, 15_000);
  let reset = 0;
  for (let port = 30000; port < 30600; port++) {
    const base = { src: "192.0.2.2", dst: "203.0.113.80", srcPort: port, dstPort: 443 };
    filter.fromGuest(tcpFrame({ ...base, flags: TcpFlag.syn, seq: 1 }));
    const outcome = filter.fromGuest(tcpFrame({ ...base, flags: TcpFlag.ack, seq: 2, payload: partial }));
    assert.equal(outcome.toPasst.length, 0, "nothing passes before it names a host");
    if (outcome.blocked?.rule === "too much held for inspection") reset++;
    assert.ok(filter.heldBytes <= maxHeldBytes, `${filter.heldBytes} bytes held`);
  }
  assert.ok(reset > 0, "the bound was met");
});

Deno.test("in a handshake and after the guest's FIN, a frame reaches passt only once passt answered the last (old passt spins on two)", () => {
  let now = 1_000_000;
  const filter = new EgressFilter(policy("full", []), host, { now: () => now });
  const guest = (flags: number, srcPort = 41000, dst = "198.51.100.7", dstPort = 443) =>
    filter.fromGuest(tcpFrame({ src: "192.0.2.2", dst, srcPort, dstPort, flags, seq: 7 })).toPasst.length;
  const passt = (flags: number, dstPort = 41000, src = "198.51.100.7", srcPort = 443) =>
    filter.fromPasst(tcpFrame({ src, dst: "192.0.2.2", srcPort, dstPort, flags }));
  // Out of the guest: a SYN, the same SYN again before passt answered (dropped), then passt's SYN-ACK.
  assert.equal(guest(TcpFlag.syn), 1);
  assert.equal(guest(TcpFlag.syn), 0, "a second SYN before passt answered the first");
  assert.equal(guest(TcpFlag.ack), 0, "any frame of that connection");
  assert.equal(guest(TcpFlag.syn, 41001), 1, "another connection is not held up");
  passt(TcpFlag.syn | TcpFlag.ack);
  assert.equal(guest(TcpFlag.ack), 1, "after passt's answer the connection flows");
  assert.equal(guest(TcpFlag.ack | TcpFlag.psh), 1);
  assert.equal(guest(TcpFlag.ack | TcpFlag.psh), 1);
  // A passt that never answers: one more SYN after the wait.
  now += passtAnswerMs - 1;
  assert.equal(guest(TcpFlag.syn, 41001), 0);
  now += 2;
  assert.equal(guest(TcpFlag.syn, 41001), 1, "retried once the wait is over");
  // Into the guest (a forward): passt's SYN, the guest's SYN-ACK once, then passt's ACK opens it.
  passt(TcpFlag.syn, 22, "192.0.2.9", 50000);
  const answer = () => guest(TcpFlag.syn | TcpFlag.ack, 22, "192.0.2.9", 50000);
  assert.equal(answer(), 1);
  assert.equal(answer(), 0, "a second SYN-ACK before passt took the first");
  passt(TcpFlag.syn, 22, "192.0.2.9", 50000);
  assert.equal(answer(), 0, "passt's SYN again is no answer");
  passt(TcpFlag.ack, 22, "192.0.2.9", 50000);
  assert.equal(guest(TcpFlag.ack | TcpFlag.psh, 22, "192.0.2.9", 50000), 1);
  assert.equal(guest(TcpFlag.ack | TcpFlag.psh, 22, "192.0.2.9", 50000), 1);
  // After the guest's FIN: one frame per frame from passt (its data or FIN, which the guest ACKs).
  assert.equal(guest(TcpFlag.fin | TcpFlag.ack), 1, "the guest's FIN");
  assert.equal(guest(TcpFlag.fin | TcpFlag.ack), 0, "its FIN again before passt took the first");
  passt(TcpFlag.ack);
  passt(TcpFlag.fin | TcpFlag.ack);
  assert.equal(guest(TcpFlag.ack), 1, "the ACK of passt's FIN");
  assert.equal(guest(TcpFlag.ack), 0, "a second ACK in the same breath");
  passt(TcpFlag.ack | TcpFlag.psh);
  assert.equal(guest(TcpFlag.ack), 1);
  // The same ports opened again: a new handshake.
  assert.equal(guest(TcpFlag.syn), 1);
  assert.equal(guest(TcpFlag.syn), 0);
  passt(TcpFlag.rst | TcpFlag.ack);
  assert.equal(guest(TcpFlag.syn), 1, "after passt's reset, nothing is held");
});
