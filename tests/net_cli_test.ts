/**
 * `net` and `allow` without a guest: zones and allowlists as the user
 * meets them. Bad input names its file and line and changes nothing; an
 * unknown zone is a usage error; without passt no zone but none starts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sealedSandbox, virtdev } from "./_helpers.ts";

Deno.test("net and allow: zones, the allowlist, custom zones, rules; bad input changes nothing", async () => {
  await using sandbox = await sealedSandbox("p");
  const run = (args: string[], env: Record<string, string> = {}) => virtdev(sandbox, args, { env });
  const ok = async (args: string[]) => {
    const result = await run(args);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    return result;
  };
  const project = join(sandbox.virtdevHome, "projects/p");
  assert.equal((await ok(["net", "p"])).stdout, "wan\n", "a new project's zone");
  await Deno.remove(join(project, "net"));
  assert.equal((await ok(["net", "p"])).stdout, "full\n", "a project made before zones keeps what it had");
  await ok(["net", "p", "wan"]);

  const unknown = await run(["net", "p", "intranet"]);
  assert.equal(unknown.code, 64, unknown.stderr);
  assert.match(unknown.stderr, /There is no zone 'intranet'/);
  assert.equal((await ok(["net", "p"])).stdout, "wan\n");
  assert.equal((await run(["start", "--net", "everything", "p"])).code, 64);

  // The allowlist: patterns and sets; the @ may be left out.
  await ok(["allow", "p", "debian", "*.example.org:443", "10.0.0.0/8"]);
  assert.deepEqual(JSON.parse((await ok(["allow", "p", "--json"])).stdout), [
    "@debian",
    "*.example.org:443",
    "10.0.0.0/8",
  ]);
  await ok(["allow", "p", "--remove", "*.example.org:443"]);
  assert.equal((await ok(["allow", "p"])).stdout, "@debian\n10.0.0.0/8\n");
  const before = await Deno.readTextFile(join(project, "allow"));
  const bad = await run(["allow", "p", "example.org", "not a name"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /'not a name' is not a domain name/);
  assert.equal(await Deno.readTextFile(join(project, "allow")), before, "a bad pattern changes nothing");

  // A malformed line in the file: its file and line, exit 2, and the zone stays.
  await Deno.writeTextFile(join(project, "allow"), "@debian\n# fine\nexa mple.org\n");
  const broken = await run(["net", "p", "allow"]);
  assert.equal(broken.code, 2, broken.stderr);
  assert.ok(broken.stderr.includes(`${join(project, "allow")}:3:`), broken.stderr);
  assert.equal((await ok(["net", "p"])).stdout, "wan\n", "nothing changed");
  await Deno.writeTextFile(join(project, "allow"), before);

  // The rules the zone stands for, loopback first.
  const rules = (await ok(["net", "p", "--rules"])).stdout.split("\n");
  assert.match(rules[0], /^drop the host's loopback/);
  assert.ok(rules.includes("allow 10.0.0.0/8 (allowlist)"), rules.join("\n"));
  assert.ok(rules.includes("allow the internet (zone wan)"), rules.join("\n"));

  // A custom zone: a built-in zone with patterns on top.
  const zones = join(sandbox.home, ".config/virtdev/zones");
  await Deno.mkdir(zones, { recursive: true });
  await Deno.writeTextFile(join(zones, "corp.zone"), "# the office\nzone lan\n10.9.0.0/16:5432\ngit.corp.example\n");
  await ok(["net", "p", "corp"]);
  const shown = JSON.parse((await ok(["net", "p", "--json"])).stdout);
  assert.equal(shown.zone, "corp");
  assert.equal(shown.base, "lan");
  assert.ok(shown.rules.includes("allow 10.9.0.0/16 port 5432 (allowlist)"), shown.rules);
  await Deno.writeTextFile(join(zones, "broken.zone"), "10.9.0.0/16\n");
  const noBase = await run(["net", "p", "broken"]);
  assert.equal(noBase.code, 2, noBase.stderr);
  assert.match(noBase.stderr, /broken\.zone:1: a custom zone needs a line 'zone BUILTIN'/);
  assert.equal((await ok(["net", "p"])).stdout, "corp\n");

  // The log of a project that never ran: nothing blocked.
  assert.deepEqual(JSON.parse((await ok(["net", "p", "--log", "--json"])).stdout), []);
  const status = JSON.parse((await ok(["status", "--json", "p"])).stdout);
  assert.deepEqual(status.net, { zone: "corp", running: null, blocked: null });
});

Deno.test("without passt, every zone but none refuses to start (exit 69) and says what to install", async () => {
  await using sandbox = await sealedSandbox("p");
  // Every tool of this host but passt and pasta.
  const bin = join(sandbox.root, "bin");
  await Deno.mkdir(bin);
  const seen = new Set<string>();
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (seen.has(entry.name) || entry.name === "passt" || entry.name === "pasta") continue;
        seen.add(entry.name);
        await Deno.symlink(join(dir, entry.name), join(bin, entry.name));
      }
    } catch {
      // A PATH entry that is not there.
    }
  }
  for (const zone of ["wan", "allow", "full"]) {
    const result = await virtdev(sandbox, ["start", "--net", zone, "p"], { env: { PATH: bin } });
    assert.equal(result.code, 69, `${zone}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`passt is not installed, so zone '${zone}' cannot be enforced`));
    assert.match(result.stderr, /apt install passt/);
  }
  const status = await virtdev(sandbox, ["status", "p"]);
  assert.equal(status.stdout.trim(), "stopped");
});
