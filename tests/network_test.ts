/** The network plan: backends, zones, passt's options by version, no silent fallback. */
import assert from "node:assert/strict";
import { passtFlavourOf, passtIsolationOptions, planNetwork } from "../src/core/vm/network.ts";
import { Store } from "../src/core/store/store.ts";
import { thrownExitCode } from "./_helpers.ts";

const paths = new Store("/v").project("web");
const base = {
  egress: "wan",
  zone: "wan",
  backend: "auto",
  sshPort: 2222,
  passt: "no-map-gw",
  asRoot: false,
} as const;

Deno.test("every zone but none goes through passt behind the egress filter, with nothing mapped to the host's loopback", () => {
  for (const zone of ["allow", "wan", "lan", "full"]) {
    const plan = planNetwork(paths, { ...base, egress: zone, zone });
    assert.equal(plan.backend, "passt");
    assert.equal(plan.filtered, true);
    assert.equal(plan.warning, undefined);
    // QEMU connects to the filter, never to passt.
    assert.equal(plan.netdev, "stream,id=net0,server=off,addr.type=unix,addr.path=/v/projects/web/run/net/vm.sock");
    assert.equal(plan.passt!.socket, "/v/projects/web/run/net/sock");
  }
  const args = planNetwork(paths, base).passt!.args;
  assert.ok(args.includes("--no-map-gw"));
  assert.deepEqual(args.slice(args.indexOf("--tcp-ports"), args.indexOf("--tcp-ports") + 2), [
    "--tcp-ports",
    "127.0.0.1/2222:22",
  ]);
  assert.deepEqual(args.slice(args.indexOf("--dns"), args.indexOf("--dns") + 2), ["--dns", "169.254.1.53"]);
  assert.ok(!args.includes("--runas"));
  const current = planNetwork(paths, { ...base, passt: "map-host-loopback", asRoot: true }).passt!.args;
  assert.ok(current.join(" ").includes("--map-host-loopback none --map-guest-addr none"));
  assert.ok(current.join(" ").includes("--runas 0:0"), "as root passt stays root to reach its socket");
});

Deno.test("no silent fallback: without passt every zone but none refuses (69); SLIRP only when asked, for full", () => {
  for (const zone of ["allow", "wan", "lan", "full"]) {
    assert.equal(thrownExitCode(() => planNetwork(paths, { ...base, egress: zone, zone, passt: undefined })), 69);
    assert.equal(
      thrownExitCode(() => planNetwork(paths, { ...base, backend: "passt", egress: zone, zone, passt: undefined })),
      69,
    );
  }
  const asked = planNetwork(paths, { ...base, egress: "full", zone: "full", backend: "slirp" });
  assert.equal(asked.backend, "slirp");
  assert.equal(asked.filtered, false);
  assert.equal(asked.netdev, "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22");
  assert.match(asked.warning!, /VIRTDEV_NET_BACKEND=slirp: the guest can reach services on this host's loopback/);
  for (const zone of ["allow", "wan", "lan"]) {
    assert.equal(thrownExitCode(() => planNetwork(paths, { ...base, egress: zone, zone, backend: "slirp" })), 69);
  }
});

Deno.test("zone none: restricted SLIRP, whatever the backend; only the SSH forward comes in", () => {
  for (const passt of ["no-map-gw", undefined] as const) {
    const plan = planNetwork(paths, { ...base, egress: "none", zone: "none", passt });
    assert.equal(plan.backend, "slirp");
    assert.equal(plan.netdev, "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22");
    assert.equal(plan.warning, undefined);
  }
});

Deno.test("passt's options are read from its help", () => {
  assert.equal(passtFlavourOf("  --no-map-gw\t\tDon't map gateway address to host"), "no-map-gw");
  assert.equal(passtFlavourOf("  --map-host-loopback ADDR\n  --no-map-gw"), "map-host-loopback");
  assert.equal(passtFlavourOf("nothing"), undefined);
  assert.deepEqual(passtIsolationOptions("no-map-gw"), ["--no-map-gw"]);
});
