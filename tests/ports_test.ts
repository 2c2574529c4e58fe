import assert from "node:assert/strict";
import { choosePort, firstAutoPort, isPortFree, parsePort } from "../src/core/vm/ports.ts";
import { VirtdevError } from "../src/core/store/errors.ts";
import { join } from "node:path";
import { killVms, sealedSandbox, thrownExitCode, virtdev } from "./_helpers.ts";

Deno.test("explicit ports: decimal digits in 1024-65535, leading zeros read as base 10", () => {
  assert.equal(parsePort("2222"), 2222);
  assert.equal(parsePort("02222"), 2222);
  assert.equal(parsePort("65535"), 65535);
  for (const bad of ["1023", "65536", "0x8ae", "22a", "", "-2222", "2222 ", "1e4"]) {
    assert.equal(thrownExitCode(() => parsePort(bad)), 7, bad);
  }
});

const freeExcept = (...taken: number[]) => (port: number) => Promise.resolve(!taken.includes(port));

Deno.test("auto ports: the lowest free from 2222, skipping ports other projects keep", async () => {
  assert.deepEqual(await choosePort({}, { isFree: freeExcept(), keptByOthers: new Set() }), {
    port: firstAutoPort,
    source: "auto",
  });
  assert.equal((await choosePort({}, { isFree: freeExcept(2222, 2223), keptByOthers: new Set([2224]) })).port, 2225);
});

Deno.test("a kept port is reused while free, and replaced when something else took it", async () => {
  assert.deepEqual(await choosePort({ kept: 2300 }, { isFree: freeExcept(), keptByOthers: new Set() }), {
    port: 2300,
    source: "kept",
  });
  assert.deepEqual(await choosePort({ kept: 2300 }, { isFree: freeExcept(2300), keptByOthers: new Set() }), {
    port: 2222,
    source: "auto",
  });
});

Deno.test("an explicit port that is taken exits 8", async () => {
  await assert.rejects(
    () => choosePort({ explicit: 3000 }, { isFree: freeExcept(3000), keptByOthers: new Set() }),
    (error: VirtdevError) => error.exitCode === 8 && /3000/.test(error.message),
  );
  assert.equal(
    (await choosePort({ explicit: 3000 }, { isFree: freeExcept(), keptByOthers: new Set() })).source,
    "explicit",
  );
});

Deno.test("isPortFree sees a real listener on loopback", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    assert.equal(await isPortFree(port), false);
  } finally {
    listener.close();
  }
  assert.equal(await isPortFree(port), true);
});

Deno.test(
  "two stores (two VIRTDEV_HOMEs, two processes) starting at once never share a port, and both VMs answer on theirs",
  async () => {
    // Each store has its own lock, so both see the same ports free at the same moment.
    await using one = await sealedSandbox("p");
    await using two = await sealedSandbox("p");
    try {
      const starts = await Promise.all([one, two].map((sandbox) => virtdev(sandbox, ["start", "p"])));
      for (const start of starts) assert.equal(start.code, 0, start.stderr);
      // deno-lint-ignore no-console -- which store lost the race, beside the test.
      console.log(`    ${starts.map((s) => s.stderr.match(/Port \d+ was taken[^\n]*/)?.[0] ?? "no race").join("; ")}`);
      const ports = await Promise.all(
        [one, two].map(async (sandbox) => (await virtdev(sandbox, ["port", "p"])).stdout),
      );
      assert.match(ports[0], /^\d+\n$/);
      assert.notEqual(ports[0], ports[1], "the same port for two stores");
      for (const [i, sandbox] of [one, two].entries()) {
        assert.match((await virtdev(sandbox, ["status", "p"])).stdout, /^(starting|running)\n$/);
        // Each port leads to its own store's VM: its network backend accepts there.
        const connection = await Deno.connect({ hostname: "127.0.0.1", port: Number(ports[i]) });
        connection.close();
        const record = JSON.parse(
          await Deno.readTextFile(join(sandbox.virtdevHome, "projects/p/run/runtime.json")),
        );
        assert.equal(record.port, Number(ports[i]));
      }
    } finally {
      await Promise.all([one, two].map((sandbox) => virtdev(sandbox, ["stop", "p"])));
      await killVms(one, ["p"]);
      await killVms(two, ["p"]);
    }
  },
);
