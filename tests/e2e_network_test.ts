/**
 * End to end on the real guest: what a guest can reach. Behind the egress
 * filter it cannot open a listener on the host's 127.0.0.1 by any address
 * it knows, nor another project's SSH port; with SLIRP (the control,
 * booted beside it) it can. Root in the guest then crafts raw SYNs to the
 * host's loopback and its own addresses in every zone, switched while the
 * VM runs (wan, allow, wan, lan, full), and tries each zone's limits: the
 * LAN (a veth into a network namespace stands for it), the host's private
 * address, 169.254.169.254, the npm registry by name, by address and by
 * its own resolver, and apt from the Debian mirror. The guest's DNS comes
 * from a resolver the test runs on a loopback address. With `net none` it
 * reaches nothing while ssh, transfer and forwards still work. With `net
 * full`, in a network namespace the test makes, it reaches the far end of
 * a veth. Forwards come and go while the VM runs and come back after a
 * restart; a killed filter leaves the VM degraded and the guest with no
 * network. Five boots in all. Runs when VIRTDEV_E2E=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import dgram from "node:dgram";
import { e2eEnabled, sealedGuestSandbox } from "./_guest.ts";
import { killVms, type Sandbox, sh, taskArguments, virtdev } from "./_helpers.ts";

/** The guest's probe script: raw SYNs, connections, HTTP, DNS (see the script). */
const probeScript = await Deno.readTextFile(new URL("./guest/net_probe.py", import.meta.url));

/** A listener on every address of this host (IPv4 and IPv6) that notes the address each connection came in on. */
function recordingListener(): { port: number; seen: string[]; close(): void } {
  const listener = Deno.listen({ hostname: "::", port: 0 });
  const seen: string[] = [];
  (async () => {
    try {
      for await (const connection of listener) {
        seen.push((connection.localAddr as Deno.NetAddr).hostname.replace(/^::ffff:/, ""));
        connection.close();
      }
    } catch {
      // Closed.
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, seen, close: () => listener.close() };
}

/**
 * A DNS server on 127.0.0.53:5353, as systemd-resolved sits on a desktop's
 * loopback: it answers probe.virtdev.test itself and passes every other
 * question to this host's resolver.
 */
async function loopbackResolver(): Promise<{ questions: string[]; address: string; close(): void }> {
  const upstream = /^\s*nameserver\s+(\S+)/m.exec(await Deno.readTextFile("/etc/resolv.conf"))![1];
  const socket = dgram.createSocket("udp4");
  const questions: string[] = [];
  socket.on("message", (message, from) => {
    const labels: string[] = [];
    for (let at = 12; message[at] > 0 && at < message.length; at += message[at] + 1) {
      labels.push(message.subarray(at + 1, at + 1 + message[at]).toString());
    }
    const name = labels.join(".").toLowerCase();
    questions.push(name);
    if (name === "probe.virtdev.test") {
      const answer = Buffer.concat([message, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 99])]);
      answer[2] = 0x81;
      answer[3] = 0x80;
      answer[7] = 1;
      socket.send(answer, from.port, from.address);
      return;
    }
    const relay = dgram.createSocket("udp4");
    relay.on("message", (reply) => {
      socket.send(reply, from.port, from.address);
      relay.close();
    });
    relay.on("error", () => relay.close());
    relay.send(message, 53, upstream);
  });
  await new Promise<void>((resolve) => socket.bind(5353, "127.0.0.53", resolve));
  return { questions, address: "127.0.0.53:5353", close: () => socket.close() };
}

/**
 * "The LAN": a veth from this host (10.78.0.1, fd78::1) into a network
 * namespace holding a peer (10.78.0.2) that answers on port 7777.
 */
async function lanPeer(): Promise<AsyncDisposable> {
  // What a run killed midway left behind.
  await sh("ip", ["link", "del", "vdlan0"]).catch(() => {});
  await netns(["del", "vd-lan"]).catch(() => {});
  await netns(["add", "vd-lan"]);
  await sh("ip", ["link", "add", "vdlan0", "type", "veth", "peer", "name", "vdlan1"]);
  await sh("ip", ["link", "set", "vdlan1", "netns", "vd-lan"]);
  await sh("ip", ["addr", "add", "10.78.0.1/24", "dev", "vdlan0"]);
  await sh("ip", ["addr", "add", "fd78::1/64", "dev", "vdlan0", "nodad"]);
  await sh("ip", ["link", "set", "vdlan0", "up"]);
  await sh("ip", ["-n", "vd-lan", "addr", "add", "10.78.0.2/24", "dev", "vdlan1"]);
  await sh("ip", ["-n", "vd-lan", "link", "set", "vdlan1", "up"]);
  const server = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      "vd-lan",
      "python3",
      "-c",
      `import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.78.0.2", 7777)); s.listen()\nwhile True:\n  c, _ = s.accept(); c.sendall(b"lan-peer\\n"); c.close()\n`,
    ],
  }).spawn();
  return {
    async [Symbol.asyncDispose]() {
      server.kill("SIGKILL");
      await server.status;
      await sh("ip", ["link", "del", "vdlan0"]).catch(() => {});
      await netns(["del", "vd-lan"]).catch(() => {});
    },
  };
}

/** A listener on `hostname`:0 that answers every connection with `secret`. */
function secretListener(hostname: string, secret: string): { port: number; close(): void } {
  const listener = Deno.listen({ hostname, port: 0 });
  (async () => {
    try {
      for await (const connection of listener) {
        connection.write(new TextEncoder().encode(`${secret}\n`)).finally(() => connection.close()).catch(() => {});
      }
    } catch {
      // Closed.
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/**
 * The guest script that tries `port` on every address the guest knows of:
 * SLIRP's 10.0.2.2 and 10.0.2.3, its gateways, its own addresses, every
 * destination and source in its routing tables, and its DNS servers. It
 * prints `<address> <first line answered>` for each.
 */
function probeEverything(port: number): string {
  return `
addrs() {
  echo 10.0.2.2; echo 10.0.2.3
  for family in -4 -6; do
    ip $family route show table all | awk '{for (i = 1; i <= NF; i++) if ($i == "via" || $i == "src") print $(i + 1); split($1, d, "/"); if (d[1] ~ /[.:]/) print d[1]}'
    # A link-local gateway (IPv6 routers are) needs its interface named.
    ip $family route show table all | awk '{for (i = 1; i <= NF; i++) if ($i == "via" && $(i + 1) ~ /^fe80/) for (j = 1; j <= NF; j++) if ($j == "dev") print $(i + 1) "%" $(j + 1)}'
    ip $family -o addr show | awk '{split($4, a, "/"); print a[1]}'
  done
  awk '$1 == "nameserver" {print $2}' /etc/resolv.conf
}
for a in $(addrs | grep -v '^fe80[^%]*$' | sort -u); do
  got=$(timeout 3 bash -c "exec 3<>/dev/tcp/$a/${port} && timeout 2 head -n 1 <&3" 2>/dev/null | tr -d '\\r')
  echo "$a \${got:-(nothing)}"
done
`;
}

/** Serves ~/www/f on the guest's port 8000, in a session of its own (so the SSH session can end). */
const serve =
  "mkdir -p ~/www && echo served > ~/www/f && cd ~/www && setsid -f python3 -m http.server 8000 >/dev/null 2>&1 </dev/null";

Deno.test({
  name:
    "e2e: a guest reaches nothing on the host's loopback, crafted or not; zones wan, allow, lan, full and none; forwards; a dead filter (real guest, TCG)",
  ignore: !e2eEnabled,
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const { sandbox } = await sealedGuestSandbox();
  const ok = async (args: string[], env: Record<string, string> = {}) => {
    const result = await virtdev(sandbox, args, { env });
    assert.equal(result.code, 0, `virtdev ${args.join(" ")} → ${result.code}\n${result.stderr}`);
    return result;
  };
  const guest = async (project: string, script: string) =>
    (await virtdev(sandbox, ["ssh", project, "--", "bash", "-s"], { stdin: script })).stdout;
  const probe = async (project: string, checks: readonly Record<string, unknown>[]) => {
    const args = ["ssh", project, "--", "sudo", "python3", "-", ...checks.map((c) => btoa(JSON.stringify(c)))];
    const result = await virtdev(sandbox, args, { stdin: probeScript });
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as unknown[];
  };
  const secret = `secret-${crypto.randomUUID()}`;
  const host = secretListener("127.0.0.1", secret);
  const recorder = recordingListener();
  const resolver = await loopbackResolver();
  const projects = ["neta", "netb", "netns"];
  await using _lan = await lanPeer();

  try {
    await t.step(
      "passt: no address the guest knows leads to the host's loopback or to another project; SLIRP (the control, booted beside it) is warned about and does reach it",
      async () => {
        for (const name of ["neta", "netb"]) await ok(["create", name]);
        assert.equal((await ok(["net", "neta"])).stdout.trim(), "wan", "a new project's zone");
        // b only has to answer probes: one vCPU keeps the two boots from
        // crowding the host's two cores (each vCPU is a thread under TCG).
        await ok(["set", "netb", "cpus=1", "memory=1G"]);
        // The guest's DNS comes from a resolver on a loopback address, as on a desktop.
        const start = await ok(["start", "neta"], { VIRTDEV_DNS_UPSTREAM: resolver.address });
        assert.doesNotMatch(start.stderr, /loopback/, "no SLIRP warning with passt");
        assert.match(start.stderr, /passt network, zone wan/);
        // SLIRP cannot enforce wan: it refuses, and says what to do.
        const refused = await virtdev(sandbox, ["start", "netb"], { env: { VIRTDEV_NET_BACKEND: "slirp" } });
        assert.equal(refused.code, 69, refused.stderr);
        assert.match(refused.stderr, /Zone 'wan' cannot be enforced with VIRTDEV_NET_BACKEND=slirp/);
        await ok(["net", "netb", "full"]);
        const slirp = await ok(["start", "netb"], { VIRTDEV_NET_BACKEND: "slirp" });
        assert.match(
          slirp.stderr,
          /warning: VIRTDEV_NET_BACKEND=slirp: the guest can reach services on this host's loopback/,
        );
        await Promise.all([ok(["wait", "neta"]), ok(["wait", "netb"])]);
        const portB = Number((await ok(["port", "netb"])).stdout.trim());
        const [probes, ssh, control] = await Promise.all([
          guest("neta", probeEverything(host.port)),
          guest("neta", probeEverything(portB)),
          guest("netb", probeEverything(host.port)),
        ]);
        const tried = probes.trim().split("\n");
        assert.ok(tried.length >= 5, probes);
        assert.ok(tried.some((line) => line.startsWith("10.0.2.2 ")), probes);
        assert.doesNotMatch(probes, new RegExp(secret), "the host's 127.0.0.1 answered the guest");
        assert.doesNotMatch(ssh, /SSH-2\.0/, "project b's SSH port answered project a");
        assert.match(control, new RegExp(`^10\\.0\\.2\\.2 ${secret}$`, "m"), "the SLIRP control");
        // deno-lint-ignore no-console -- what the guest tried, beside the test.
        console.log(
          `    passt: ${tried.length} addresses tried, none answered: ${tried.map((l) => l.split(" ")[0]).join(" ")}`,
        );
        await ok(["stop", "netb"]);
      },
    );

    await t.step(
      "zones, switched while the VM runs: raw SYNs from root never reach the host's loopback; each zone keeps its limits; DNS from a loopback resolver; the blocked log names each attempt",
      async () => {
        const npm = (await Deno.resolveDns("registry.npmjs.org", "A"))[0];
        const addresses = (await sh("ip", ["-o", "addr", "show", "scope", "global"])).matchAll(
          /inet6? ([0-9a-f.:]+)\//g,
        );
        const own = [...addresses].map((m) => m[1]).filter((a) => a !== "10.78.0.1" && a !== "fd78::1");
        const loopbacks = ["127.0.0.1", "127.0.0.2", "0.0.0.0", "::1", "::ffff:127.0.0.1", "::"];
        const syn = {
          check: "syn",
          targets: [...loopbacks, "gateway", ...own, "10.78.0.1", "fd78::1"],
          port: recorder.port,
        };
        const reachedLoopback = () => recorder.seen.filter((a) => /^(127\.|::1$|0\.0\.0\.0$|::$)/.test(a));
        const tcp = (addr: string, port: number) => ({ check: "tcp", addr, port });
        const aptUpdate = async () => {
          const apt = await virtdev(sandbox, ["ssh", "neta", "--", "sudo apt-get update -q 2>&1; echo exit=$?"]);
          assert.match(apt.stdout, /exit=0/, apt.stdout);
          assert.doesNotMatch(apt.stdout, /^(Err|W: Failed)/m, apt.stdout);
        };

        // wan: the internet only.
        const [, hostPrivate, lanHost, metadata, hostV6, named, mirrorIp] = await probe("neta", [
          syn,
          tcp("10.78.0.1", recorder.port),
          tcp("10.78.0.2", 7777),
          tcp("169.254.169.254", 80),
          tcp("fd78::1", recorder.port),
          { check: "resolve", name: "probe.virtdev.test" },
          { check: "resolve", name: "deb.debian.org" },
        ]);
        assert.deepEqual(reachedLoopback(), [], "a raw SYN reached the host's loopback (wan)");
        assert.equal(recorder.seen.join(" "), "", "wan reached this host on one of its addresses");
        assert.equal(hostPrivate, "refused", "the host's private address");
        assert.equal(lanHost, "refused", "a LAN peer");
        assert.equal(metadata, "refused", "169.254.169.254");
        assert.equal(hostV6, "refused", "the host's IPv6 address");
        assert.deepEqual(named, ["203.0.113.99"], "DNS through the resolver on 127.0.0.53");
        assert.ok(Array.isArray(mirrorIp) && mirrorIp.length > 0, `deb.debian.org: ${mirrorIp}`);
        await aptUpdate();

        // allow: the Debian set and the mirror by name; nothing else, by any road.
        await ok(["allow", "neta", "@debian", "deb.debian.org", "probe.virtdev.test"]);
        const switched = await ok(["net", "neta", "allow"]);
        assert.match(switched.stderr, /Zone of neta: allow \(in force now\)/);
        const [, npmName, npmLiteral, npmHost, ownResolver, dot, probeName, mirror] = await probe("neta", [
          syn,
          { check: "resolve", name: "registry.npmjs.org" },
          { check: "http", host: npm },
          { check: "http", host: "registry.npmjs.org", ip: npm },
          { check: "dns", server: "9.9.9.9", name: "registry.npmjs.org" },
          tcp("1.1.1.1", 853),
          { check: "resolve", name: "probe.virtdev.test" },
          { check: "http", host: "deb.debian.org", path: "/debian/dists/bookworm/Release" },
        ]);
        assert.deepEqual(reachedLoopback(), [], "a raw SYN reached the host's loopback (allow)");
        assert.match(String(npmName), /^failed/, "the npm registry by name");
        assert.match(String(npmLiteral), /^failed/, `the npm registry by its address ${npm}`);
        assert.match(String(npmHost), /^failed/, "the npm registry's name asked of its address");
        assert.equal(ownResolver, "rcode 5 answers 0", "a resolver the guest chose is answered by the filter");
        assert.equal(dot, "refused", "DNS over TLS");
        assert.deepEqual(probeName, ["203.0.113.99"]);
        assert.equal(mirror, "http 200");
        await aptUpdate();
        const log = JSON.parse((await ok(["net", "neta", "--log", "--json"])).stdout) as {
          protocol: string;
          target: string;
          name?: string;
          port?: number;
          count: number;
        }[];
        const logged = (test: (e: (typeof log)[number]) => boolean, what: string) =>
          assert.ok(log.some(test), `${what} is not in the blocked log:\n${JSON.stringify(log, null, 1)}`);
        logged((e) => e.protocol === "dns" && e.target === "registry.npmjs.org", "the refused name");
        logged(
          (e) => e.target === npm && e.name === "registry.npmjs.org" && e.port === 80,
          "the name asked of the shared address",
        );
        logged((e) => e.target === "169.254.169.254" && e.port === 80, "169.254.169.254");
        logged(
          (e) => e.target === "127.0.0.1" && e.port === recorder.port && e.protocol === "tcp",
          "the raw SYN to 127.0.0.1",
        );
        logged((e) => e.target === "1.1.1.1" && e.port === 853, "DNS over TLS");
        const status = JSON.parse((await ok(["status", "--json", "neta"])).stdout);
        assert.equal(status.net.running, "allow");
        assert.ok(status.net.blocked >= log.length, JSON.stringify(status.net));
        const shown = (await ok(["net", "neta", "--log"])).stdout;
        // deno-lint-ignore no-console -- the log as a person reads it, beside the test.
        console.log(shown.split("\n").map((line) => `    ${line}`).join("\n"));

        // Back to wan while it runs: the registry is there again.
        await ok(["net", "neta", "wan"]);
        const [npmAgain] = await probe("neta", [{ check: "http", host: "registry.npmjs.org" }]);
        assert.match(String(npmAgain), /^http /, "wan, switched without a restart, reaches the registry");

        // lan: the LAN, not this host.
        await ok(["net", "neta", "lan"]);
        const [, peer, hostOnLan, lanName] = await probe("neta", [
          syn,
          tcp("10.78.0.2", 7777),
          tcp("10.78.0.1", recorder.port),
          { check: "resolve", name: "probe.virtdev.test" },
        ]);
        assert.deepEqual(reachedLoopback(), [], "a raw SYN reached the host's loopback (lan)");
        assert.equal(recorder.seen.join(" "), "", "lan reached this host on one of its addresses");
        assert.equal(peer, "open", "lan reaches the LAN peer");
        assert.equal(hostOnLan, "refused", "lan does not reach the host's LAN address");
        assert.deepEqual(lanName, ["203.0.113.99"], "DNS in lan");

        // full: this host's other addresses too (the control for the refusals above), never its loopback.
        await ok(["net", "neta", "full"]);
        const [, hostInFull, fullName] = await probe("neta", [
          syn,
          tcp("10.78.0.1", recorder.port),
          { check: "resolve", name: "probe.virtdev.test" },
        ]);
        assert.equal(hostInFull, "open", "full reaches the host's private address");
        // A download at full speed through the filter: frames reach passt whole (an old passt loses
        // its place in the stream when a frame is split between writes, and the network stops).
        const blob = new Uint8Array(16 << 20);
        const server = Deno.serve({ hostname: "10.78.0.1", port: 0, onListen: () => {} }, () => new Response(blob));
        try {
          const got = await virtdev(sandbox, [
            "ssh",
            "neta",
            "--",
            `python3 -c 'import urllib.request; print(len(urllib.request.urlopen("http://10.78.0.1:${server.addr.port}/", timeout=60).read()))'`,
          ]);
          assert.equal(got.stdout.trim(), String(blob.length), got.stderr);
        } finally {
          await server.shutdown();
        }
        assert.deepEqual(fullName, ["203.0.113.99"], "DNS in full");
        // Each SYN twice, back to back, to an address full allows: Debian 12's passt, reading a
        // connection's SYN together with a second frame of it, spins at full CPU and the guest's
        // network stops. The filter lets a handshake's next frame go only once passt has answered.
        const passt = Number(
          (await sh("pgrep", ["-f", "-o", "--", `--socket ${sandbox.virtdevHome}/projects/neta/run/net/sock`])).trim(),
        );
        await probe("neta", [{ ...syn, targets: ["10.78.0.1"], twice: true }]);
        const cpuTicks = async () => {
          const stat = await Deno.readTextFile(`/proc/${passt}/stat`);
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          return Number(fields[11]) + Number(fields[12]);
        };
        // passt comes back to idle (its handshake timeout ends a bounded busy loop of its own that a raw
        // SYN to a listener which closes at once starts, for up to 10 s); the spin never does.
        const windows: number[] = [];
        while (windows.length < 8 && !(windows.at(-1)! < 0.3)) {
          const ticksBefore = await cpuTicks();
          await new Promise((resolve) => setTimeout(resolve, 3_000));
          windows.push((await cpuTicks() - ticksBefore) / 100);
        }
        // deno-lint-ignore no-console -- the measurement, beside the test.
        console.log(`    passt after 10 doubled SYNs, s of CPU per 3 s: ${windows.join(", ")}`);
        assert.ok(windows.at(-1)! < 0.3, `passt spins after doubled SYNs: ${windows.join(", ")} s of CPU per 3 s`);
        const [afterDoubled] = await probe("neta", [tcp("10.78.0.1", recorder.port)]);
        assert.equal(afterDoubled, "open", "the guest's network works after doubled SYNs");
        assert.ok(recorder.seen.includes("10.78.0.1"), JSON.stringify(recorder.seen));
        assert.deepEqual(reachedLoopback(), [], "a raw SYN reached the host's loopback (full)");
        assert.ok(resolver.questions.includes("probe.virtdev.test"), "the loopback resolver was asked");
        // deno-lint-ignore no-console -- what was tried, beside the test.
        console.log(
          `    raw SYNs to: ${syn.targets.join(" ")}; the host accepted only on: ${
            [...new Set(recorder.seen)].join(" ")
          }`,
        );
      },
    );

    await t.step("forwards: loopback only, removed while running; a busy host port exits 8", async () => {
      await guest("neta", serve);
      const added = await ok(["forward", "neta", "18000:8000"]);
      assert.match(added.stderr, /Forwarding 127\.0\.0\.1:18000 → guest port 8000/);
      assert.equal(await fetchSoon("127.0.0.1", 18000, "/f"), "served\n");
      // Not on any other address of this host (one is added when it has none).
      await using addresses = await nonLoopbackAddresses();
      assert.ok(addresses.list.length > 0);
      for (const address of addresses.list) {
        await assert.rejects(() => fetchText(address, 18000, "/f"), `reachable on ${address}`);
      }
      // deno-lint-ignore no-console -- which addresses were tried, beside the test.
      console.log(
        `    the forward is not on: ${addresses.list.join(" ")}${addresses.added ? " (added for the test)" : ""}`,
      );
      const status = JSON.parse((await ok(["status", "--json", "neta"])).stdout);
      assert.deepEqual(status.forwards, [{ host: 18000, guest: 8000, state: "up" }]);
      await ok(["forward", "--remove", "neta", "18000:8000"]);
      await assert.rejects(() => fetchText("127.0.0.1", 18000, "/f"), "closed by --remove");
      await ok(["forward", "neta", "18000:8000"]);
      const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const taken = await virtdev(sandbox, ["forward", "neta", `${(busy.addr as Deno.NetAddr).port}:8000`]);
        assert.equal(taken.code, 8, taken.stderr);
      } finally {
        busy.close();
      }
    });

    await t.step(
      "a filter killed while the VM runs: the guest has no network (never an unfiltered one), degraded, stop works; the next start works, and the forward is back",
      async () => {
        // In zone full the guest knocks on the host's 10.78.0.1 three times a second, from a session of its own.
        const knocks = () => recorder.seen.filter((a) => a === "10.78.0.1").length;
        await guest(
          "neta",
          `setsid -f bash -c 'while :; do timeout 1 bash -c "exec 3<>/dev/tcp/10.78.0.1/${recorder.port}"; sleep 0.3; done' >/dev/null 2>&1 </dev/null`,
        );
        const before = knocks();
        for (let i = 0; i < 100 && knocks() < before + 3; i++) await new Promise((resolve) => setTimeout(resolve, 100));
        assert.ok(knocks() >= before + 3, "the guest's knocks arrive while the filter runs");
        const agent = JSON.parse(await Deno.readTextFile(join(sandbox.virtdevHome, "projects/neta/run/agent.json")));
        Deno.kill(agent.filterPid, "SIGKILL");
        await new Promise((resolve) => setTimeout(resolve, 500));
        const atKill = knocks();
        await new Promise((resolve) => setTimeout(resolve, 4000));
        assert.equal(knocks(), atKill, "knocks arrived with the filter dead: an unfiltered network");
        let state = "";
        for (let i = 0; i < 100 && state !== "degraded"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          state = (await ok(["status", "neta"])).stdout.trim();
        }
        assert.equal(state, "degraded");
        assert.equal((await virtdev(sandbox, ["wait", "neta"])).code, 11);
        await ok(["stop", "neta"]);
        const start = await ok(["start", "neta"]);
        assert.match(start.stderr, /passt network, zone full/);
        await ok(["wait", "neta"]);
        assert.equal((await ok(["status", "neta"])).stdout.trim(), "running");
        await guest("neta", serve);
        let text = "";
        for (let i = 0; i < 100 && text === ""; i++) {
          text = await fetchText("127.0.0.1", 18000, "/f").catch(() => "");
          if (text === "") await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.equal(text, "served\n", "the forward came back with the VM");
        await ok(["forward", "--remove", "neta", "18000"]);
        await ok(["stop", "neta"]);
      },
    );

    await t.step("net none: no name, no connection to anything; ssh, transfer and a forward still work", async () => {
      await ok(["net", "neta", "none"]);
      await ok(["start", "neta"]);
      try {
        await ok(["wait", "neta"]);
        const [dns, probes, outside] = await Promise.all([
          guest("neta", "getent hosts deb.debian.org >/dev/null && echo resolved || echo no-name"),
          guest("neta", probeEverything(host.port)),
          guest(
            "neta",
            'for t in 1.1.1.1/443 8.8.8.8/53 192.0.2.1/80; do timeout 4 bash -c "exec 3<>/dev/tcp/${t%/*}/${t#*/}" 2>/dev/null && echo "reached $t"; done; echo done',
          ),
        ]);
        assert.equal(dns.trim(), "no-name");
        assert.doesNotMatch(probes, new RegExp(secret));
        for (const line of probes.trim().split("\n")) {
          // Only the guest itself may answer (its own addresses have nothing on the port).
          assert.match(line, / \(nothing\)$/, line);
        }
        assert.equal(outside.trim(), "done", outside);
        // Raw SYNs from root too: SLIRP's 10.0.2.2 is the host's loopback, and restricted SLIRP must drop them.
        const seenBefore = recorder.seen.length;
        const [sent] = await probe("neta", [
          {
            check: "syn",
            targets: ["127.0.0.1", "0.0.0.0", "10.0.2.2", "10.0.2.3", "gateway", "::1"],
            port: recorder.port,
            gateway: "10.0.2.2",
          },
        ]);
        assert.ok(Array.isArray(sent) && sent.includes("10.0.2.2"), JSON.stringify(sent));
        assert.deepEqual(recorder.seen.slice(seenBefore), [], "a raw SYN left a guest in zone none");
        const file = join(sandbox.root, "to-guest.txt");
        await Deno.writeTextFile(file, "over ssh\n");
        await ok(["transfer", "neta", file, ":to-guest.txt"]);
        assert.equal((await guest("neta", "cat ~/to-guest.txt")).trim(), "over ssh");
        await guest("neta", serve);
        await ok(["forward", "neta", "18000:8000"]);
        assert.equal(await fetchSoon("127.0.0.1", 18000, "/f"), "served\n");
        await ok(["forward", "--remove", "neta", "18000"]);
      } finally {
        await virtdev(sandbox, ["stop", "neta"]);
        await ok(["net", "neta", "full"]);
      }
    });

    await t.step("net full inside a network namespace: the guest reaches the far end of a veth", async () => {
      const far = "192.0.2.1";
      await netns(["add", "vd-vm"]);
      await netns(["add", "vd-far"]);
      try {
        await sh("ip", ["link", "add", "vd0", "type", "veth", "peer", "name", "vd1"]);
        await sh("ip", ["link", "set", "vd0", "netns", "vd-vm"]);
        await sh("ip", ["link", "set", "vd1", "netns", "vd-far"]);
        for (const [ns, dev, address] of [["vd-vm", "vd0", "192.0.2.10/24"], ["vd-far", "vd1", `${far}/24`]]) {
          await sh("ip", ["-n", ns, "addr", "add", address, "dev", dev]);
          await sh("ip", ["-n", ns, "link", "set", dev, "up"]);
          await sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
        }
        await sh("ip", ["-n", "vd-vm", "route", "add", "default", "via", far]);
        const farSecret = `far-${crypto.randomUUID()}`;
        const server = new Deno.Command("ip", {
          args: [
            "netns",
            "exec",
            "vd-far",
            "python3",
            "-c",
            `import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("${far}", 7777)); s.listen()\nwhile True:\n  c, _ = s.accept(); c.sendall(b"${farSecret}\\n"); c.close()\n`,
          ],
        }).spawn();
        try {
          await ok(["create", "netns"]);
          // Its far end sits on the LAN of the namespace, which only zone lan and full reach.
          await ok(["net", "netns", "full"]);
          const inside = (args: string[]) => inNamespace(sandbox, "vd-vm", args);
          const start = await inside(["start", "netns"]);
          assert.equal(start.code, 0, start.stderr);
          assert.match(start.stderr, /passt network, zone full/);
          assert.equal((await inside(["wait", "netns"])).code, 0);
          // One word: ssh hands it to the guest's shell.
          const reached = await inside([
            "ssh",
            "netns",
            "--",
            `timeout 5 bash -c 'exec 3<>/dev/tcp/${far}/7777 && head -n 1 <&3'`,
          ]);
          assert.equal(reached.stdout.trim(), farSecret, reached.stderr);
          assert.equal((await inside(["stop", "netns"])).code, 0);
        } finally {
          server.kill("SIGKILL");
          await server.status;
        }
      } finally {
        await killVms(sandbox, ["netns"]);
        await netns(["del", "vd-vm"]).catch(() => {});
        await netns(["del", "vd-far"]).catch(() => {});
      }
    });
  } finally {
    host.close();
    recorder.close();
    resolver.close();
    await killVms(sandbox, projects);
  }
});

async function netns(args: string[]): Promise<void> {
  await sh("ip", ["netns", ...args]);
}

/** Runs virtdev inside network namespace `ns`, as `ip netns exec` does. */
async function inNamespace(
  sandbox: Sandbox,
  ns: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), ...taskArguments(sandbox.home), ...args],
    env: sandbox.env,
    clearEnv: true,
    cwd: sandbox.root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** A plain HTTP GET of `path` (the guest's python http.server), or a rejection when nothing answers. */
async function fetchText(hostname: string, port: number, path: string): Promise<string> {
  const connection = await Deno.connect({ hostname, port });
  try {
    await connection.write(new TextEncoder().encode(`GET ${path} HTTP/1.0\r\nHost: x\r\n\r\n`));
    const response = await new Response(connection.readable).text();
    const [head, body] = response.split("\r\n\r\n");
    if (!/^HTTP\/1\.[01] 200/.test(head)) throw new Error(`HTTP: ${head.split("\r\n")[0]}`);
    return body;
  } catch (error) {
    try {
      connection.close();
    } catch {
      // Closed by the response.
    }
    throw error;
  }
}

/**
 * {@link fetchText}, tried for up to 30 s: the guest's server takes a
 * moment to start under TCG, and a forward comes back a moment after boot.
 */
async function fetchSoon(hostname: string, port: number, path: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await fetchText(hostname, port, path);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * This host's addresses other than loopback. A host without one (some CI
 * machines) gets a dummy interface with 192.0.2.77 for the test, removed on
 * dispose, so that the check never passes for want of an address.
 */
async function nonLoopbackAddresses(): Promise<{ list: string[]; added: boolean } & AsyncDisposable> {
  const text = await sh("ip", ["-o", "addr", "show", "scope", "global"]);
  const list = [...text.matchAll(/inet6? ([0-9a-f.:]+)\//g)].map((match) => match[1]);
  if (list.length > 0) return { list, added: false, async [Symbol.asyncDispose]() {} };
  await sh("ip", ["link", "add", "vdprobe0", "type", "dummy"]);
  await sh("ip", ["addr", "add", "192.0.2.77/32", "dev", "vdprobe0"]);
  await sh("ip", ["link", "set", "vdprobe0", "up"]);
  return {
    list: ["192.0.2.77"],
    added: true,
    async [Symbol.asyncDispose]() {
      await sh("ip", ["link", "del", "vdprobe0"]).catch(() => {});
    },
  };
}
