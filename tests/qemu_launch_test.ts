import assert from "node:assert/strict";
import { join } from "node:path";
import { qemuLaunchCommand } from "../src/core/vm/qemu_launch.ts";

Deno.test("a boot runs QEMU itself, with the extra arguments last", () => {
  assert.deepEqual(qemuLaunchCommand({ program: "qemu", args: ["-S"] }, ["-pidfile", "/p"]), {
    program: "qemu",
    args: ["-S", "-pidfile", "/p"],
  });
});

Deno.test("a resume's state reaches the program on fd 3, whatever its path holds; no shell reads the path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const marker = join(dir, "pwned");
    const odd = join(dir, `we'b "$(touch pwned)" \`touch pwned\`; $1 *`);
    await Deno.mkdir(odd);
    const state = join(odd, "memory");
    await Deno.writeTextFile(state, "the saved state\n");
    // Run where a shell that read the path would leave `pwned`. `cat` stands in for QEMU: it reads what QEMU would read from fd 3.
    const command = qemuLaunchCommand({ program: "cat", args: ["/dev/fd/3"], incoming: state }, ["-"]);
    const output = await new Deno.Command(command.program, { args: [...command.args], stdin: "null", cwd: dir })
      .output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout), "the saved state\n");
    await assert.rejects(Deno.lstat(marker), Deno.errors.NotFound);
    // A state that is gone fails the launch; the program never runs.
    const gone = qemuLaunchCommand({ program: "touch", args: [marker], incoming: join(dir, "gone") });
    const failed = await new Deno.Command(gone.program, { args: [...gone.args], stderr: "null", cwd: dir }).output();
    assert.notEqual(failed.code, 0);
    await assert.rejects(Deno.lstat(marker), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
