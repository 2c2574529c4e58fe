import { generateEd25519 } from "../src/core/guest/ed25519_key.ts";
import assert from "node:assert/strict";
import { rsyncRemoteShell, sshArguments, type SshTarget } from "../src/core/guest/ssh.ts";
import { VirtdevError } from "../src/core/store/errors.ts";

const target: SshTarget = { project: "web", port: 2301, identity: "/h/key", knownHosts: "/h/p/known_hosts" };

const optionValues = (args: readonly string[]): string[] =>
  args.flatMap((arg, i) => (args[i - 1] === "-o" ? [arg] : []));

Deno.test("ssh pins the project's host key under its alias, strictly, without the user's config", () => {
  const args = sshArguments(target, ["hostname"]);
  assert.deepEqual(args.slice(0, 6), ["-F", "none", "-i", "/h/key", "-p", "2301"]);
  const options = optionValues(args);
  for (
    const expected of [
      "HostKeyAlias=virtdev-web",
      "UserKnownHostsFile=/h/p/known_hosts",
      "StrictHostKeyChecking=yes",
      "GlobalKnownHostsFile=none",
      "ForwardAgent=no",
      "IdentitiesOnly=yes",
    ]
  ) assert.ok(options.includes(expected), expected);
  assert.ok(!options.some((option) => /StrictHostKeyChecking=no|UserKnownHostsFile=\/dev\/null/.test(option)));
  assert.deepEqual(args.slice(-2), ["dev@127.0.0.1", "hostname"]);
});

Deno.test("dash arguments of the remote command stay after the destination", () => {
  const args = sshArguments(target, ["sudo", "-n", "true"]);
  assert.deepEqual(args.slice(-4), ["dev@127.0.0.1", "sudo", "-n", "true"]);
});

Deno.test("paths with spaces are quoted for ssh -o and for rsync's -e splitter", () => {
  const spaced = { ...target, knownHosts: "/h/my projects/known_hosts", identity: "/h/my key" };
  assert.ok(optionValues(sshArguments(spaced, [])).includes('UserKnownHostsFile="/h/my projects/known_hosts"'));
  const shell = rsyncRemoteShell(spaced);
  assert.match(shell, /^ssh -F none -i '\/h\/my key' -p 2301 /);
  assert.match(shell, /'UserKnownHostsFile="\/h\/my projects\/known_hosts"'/);
  assert.match(shell, /BatchMode=yes/);
});

Deno.test("a single quote in a path is refused rather than mis-split by rsync", () => {
  assert.throws(
    () => rsyncRemoteShell({ ...target, identity: "/h/o'key" }),
    (error: VirtdevError) => error.exitCode === 70,
  );
});

Deno.test("host keys made in-process are what ssh-keygen reads: the same public key, a valid fingerprint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 5; i++) {
      const { privateKey, publicKey } = await generateEd25519(`virtdev-p${i}`);
      const file = `${dir}/key${i}`;
      await Deno.writeTextFile(file, privateKey, { mode: 0o600 });
      const derived = await new Deno.Command("ssh-keygen", { args: ["-y", "-f", file], stdout: "piped" }).output();
      assert.equal(derived.code, 0);
      // ssh-keygen -y prints the key with the comment stored in the private key.
      assert.equal(new TextDecoder().decode(derived.stdout).trim(), publicKey);
      const fingerprint = await new Deno.Command("ssh-keygen", { args: ["-l", "-f", file], stdout: "piped" }).output();
      assert.match(
        new TextDecoder().decode(fingerprint.stdout),
        new RegExp(`^256 SHA256:\\S+ virtdev-p${i} \\(ED25519\\)`),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** ssh's own reading of our options (`ssh -G`): what it would really use. */
async function resolvedBy(args: readonly string[]): Promise<Map<string, string>> {
  const output = await new Deno.Command("ssh", { args: ["-G", ...args], stdout: "piped", stderr: "piped" }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new Map(
    new TextDecoder().decode(output.stdout).split("\n").map((line) => {
      const space = line.indexOf(" ");
      return [line.slice(0, space), line.slice(space + 1)] as [string, string];
    }),
  );
}

Deno.test("a shared connection's control path reaches ssh literally, and a path too long for a socket is left out", async () => {
  const odd = "/h/100%/p/run/ssh.ctl";
  const client = await resolvedBy(sshArguments({ ...target, controlPath: odd }, []));
  assert.equal(client.get("controlpath"), odd);
  assert.equal(client.get("controlmaster"), "false");
  assert.equal(client.get("controlpersist"), "no");
  const master = await resolvedBy(sshArguments({ ...target, controlPath: odd }, [], { controlMaster: true }));
  assert.equal(master.get("controlmaster"), "true");
  // ssh binds <path>.<16 characters> first; a Unix socket's path holds 107 bytes.
  const long = `/${"d".repeat(80)}/run/ssh.ctl`;
  const without = await resolvedBy(sshArguments({ ...target, controlPath: long }, []));
  assert.equal(without.get("controlpath"), undefined);
  assert.equal(without.get("controlmaster"), "false");
});

Deno.test("X25519 comes first among the key exchanges, ssh's own list after it", async () => {
  const kex = (await resolvedBy(sshArguments(target, []))).get("kexalgorithms")?.split(",") ?? [];
  assert.equal(kex[0], "curve25519-sha256");
  assert.ok(kex.includes("sntrup761x25519-sha512@openssh.com"), kex.join(","));
});
