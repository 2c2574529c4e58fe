import assert from "node:assert/strict";
import { runCli } from "../src/cli/app.ts";
import { commandNames, loadAllCommands } from "../src/cli/commands.ts";
import { environmentVariables } from "../src/core/store/config.ts";
import { dispatchArguments } from "../src/main.ts";
import type { Io } from "../src/ui/io.ts";
import { repoRoot } from "./_helpers.ts";

function memoryIo(stdin = ""): Io & { stdout: string; stderr: string } {
  const lines = stdin === "" ? [] : stdin.split("\n");
  const io = {
    stdout: "",
    stderr: "",
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
    readLine: () => Promise.resolve(lines.length ? lines.shift()! : null),
    stderrIsTerminal: false,
    stdinIsTerminal: false,
    stdoutIsTerminal: false,
  };
  return io;
}

async function cli(args: string[], env: Record<string, string> = { HOME: "/nonexistent" }) {
  const io = memoryIo();
  const code = await runCli(args, { io, env, version: "test" });
  return { code, stdout: io.stdout, stderr: io.stderr };
}

Deno.test("--help lists every command with its synopsis on stdout", async () => {
  const { code, stdout, stderr } = await cli(["--help"]);
  assert.equal(code, 0);
  assert.equal(stderr, "");
  for (const name of commandNames) {
    assert.match(stdout, new RegExp(`virtdev ${name}\\b`), name);
    assert.match(stdout, new RegExp(`^  ${name} +\\S`, "m"), name);
  }
});

Deno.test("help <command> and <command> --help print that command's usage and options", async () => {
  for (const args of [["help", "detach"], ["detach", "--help"]]) {
    const { code, stdout } = await cli(args);
    assert.equal(code, 0);
    assert.match(stdout, /Usage: virtdev detach \[--in-place\] \[-y\/--yes\] \[--color WHEN\] PROJECT/);
    assert.match(stdout, /--in-place/);
  }
});

Deno.test("usage errors exit 64 with a message and a hint on stderr", async () => {
  for (
    const args of [[], ["bogus"], ["create"], ["destroy", "-z", "p"], ["list", "--color=pink"], ["status", "a", "b"]]
  ) {
    const { code, stdout, stderr } = await cli(args);
    assert.equal(code, 64, args.join(" "));
    assert.equal(stdout, "");
    assert.match(stderr, /virtdev|usage/);
  }
  const { stderr } = await cli(["destroy", "-z", "p"]);
  assert.equal(stderr, "virtdev: Unexpected option or subcommand: `-z`.\nhint: see 'virtdev help destroy'.\n");
});

Deno.test("a dash token in the project position is an invalid name (exit 2)", async () => {
  const { code, stderr } = await cli(["create", "-x"]);
  assert.equal(code, 2);
  assert.match(stderr, /Invalid project name: "-x"\./);
});

Deno.test("--color is an option of every command: a bad value and an unknown option are usage errors", async () => {
  for (const spec of await loadAllCommands()) {
    // Help wins when it is asked for, so these run without --help: a parser
    // that ignored --color or unknown options would not exit 64.
    const project = spec.takesProject ? ["p"] : [];
    for (
      const args of [[spec.name, "--color=pink", ...project], [spec.name, "--color=no", "--no-such-option", ...project]]
    ) {
      const { code, stderr } = await cli(args);
      assert.equal(code, 64, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, /^virtdev: .*\nhint: see 'virtdev help/, args.join(" "));
    }
  }
  for (const when of ["yes", "no", "auto"]) {
    const { code, stderr } = await cli(["list", `--color=${when}`, "--json"]);
    assert.equal(code, 0, `--color=${when}: ${stderr}`);
  }
  const colored = await cli(["status", "--color=yes", "nope"]);
  assert.equal(colored.code, 3);
  assert.ok(colored.stderr.startsWith("\x1b[31mvirtdev:\x1b[39m No such project: nope."), "--color=yes colours it");
});

Deno.test("a bad environment variable is reported with exit 65 before any work", async () => {
  const { code, stderr } = await cli(["list"], { HOME: "/h", VIRTDEV_VM_CPUS: "many" });
  assert.equal(code, 65);
  assert.equal(stderr, "virtdev: VIRTDEV_VM_CPUS must be a whole number of CPUs: 'many'.\n");
});

Deno.test("completion scripts for bash, zsh and fish complete virtdev", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const { code, stdout } = await cli(["completion", shell]);
    assert.equal(code, 0, shell);
    assert.match(stdout, /virtdev/);
    assert.ok(stdout.length > 200, shell);
  }
  const { stdout } = await cli(["completion", "bash", "de"]);
  assert.match(stdout, /destroy/);
  assert.match(stdout, /detach/);
  const flags = await cli(["completion", "bash", "detach", "--"]);
  assert.match(flags.stdout, /--in-place/);
});

Deno.test("virtdev-<command> names dispatch to <command>", () => {
  assert.deepEqual(dispatchArguments("/usr/bin/virtdev-start", ["web"]), ["start", "web"]);
  assert.deepEqual(dispatchArguments("virtdev", ["list"]), ["list"]);
  assert.deepEqual(dispatchArguments("/usr/bin/deno", ["list"]), ["list"]);
});

Deno.test("the virtdev task allows exactly the environment variables virtdev reads", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${repoRoot}/deno.json`));
  const allowEnv = /--allow-env=(\S+)/.exec(config.tasks.virtdev.command)![1].split(",");
  assert.deepEqual([...allowEnv].sort(), [...environmentVariables].sort());
});
