/** The network plan: backends, egress, passt's options by version. */
import assert from "node:assert/strict";
import { passtFlavourOf, passtIsolationOptions, planNetwork } from "../src/core/vm/network.ts";
import { Store } from "../src/core/store/store.ts";
import { thrownExitCode } from "./_helpers.ts";

const paths = new Store("/v").project("web");
const base = { egress: "full", backend: "auto", sshPort: 2222, passt: "no-map-gw", asRoot: false } as const;

Deno.test("full egress goes through passt, with no address mapped to the host's loopback", () => {
  const plan = planNetwork(paths, base);
  assert.equal(plan.backend, "passt");
  assert.equal(plan.warning, undefined);
  assert.equal(plan.netdev, "stream,id=net0,server=off,addr.type=unix,addr.path=/v/projects/web/run/net/sock");
  const args = plan.passt!.args;
  assert.ok(args.includes("--no-map-gw"));
  assert.deepEqual(args.slice(args.indexOf("--tcp-ports"), args.indexOf("--tcp-ports") + 2), [
    "--tcp-ports",
    "127.0.0.1/2222:22",
  ]);
  assert.ok(!args.includes("--runas"));
  const current = planNetwork(paths, { ...base, passt: "map-host-loopback", asRoot: true }).passt!.args;
  assert.ok(current.join(" ").includes("--map-host-loopback none --map-guest-addr none"));
  assert.ok(current.join(" ").includes("--runas 0:0"), "as root passt stays root to reach its socket");
});

Deno.test("without passt, or with SLIRP asked for, SLIRP carries it and start says what that costs", () => {
  const missing = planNetwork(paths, { ...base, passt: undefined });
  assert.equal(missing.backend, "slirp");
  assert.equal(missing.netdev, "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22");
  assert.match(missing.warning!, /passt is not installed.*host's loopback.*apt install passt/);
  const asked = planNetwork(paths, { ...base, backend: "slirp" });
  assert.match(asked.warning!, /VIRTDEV_NET_BACKEND=slirp/);
  assert.equal(thrownExitCode(() => planNetwork(paths, { ...base, backend: "passt", passt: undefined })), 69);
});

Deno.test("no egress: restricted SLIRP, whatever the backend; only the SSH forward comes in", () => {
  for (const passt of ["no-map-gw", undefined] as const) {
    const plan = planNetwork(paths, { ...base, egress: "none", passt });
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
