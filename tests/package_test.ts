/**
 * What the AUR package ships: the PKGBUILD and its .SRCINFO, the man page
 * rendered from the command definitions, and the completions and links
 * written by `scripts/package_assets.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadAllCommands } from "../src/cli/commands.ts";
import { renderManPage, synopsis } from "../src/cli/man_page.ts";
import { repoRoot, sh } from "./_helpers.ts";

const aur = join(repoRoot, "scripts/aur");

Deno.test("the committed .SRCINFO is what makepkg --printsrcinfo makes of the PKGBUILD (as an unprivileged user)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "virtdev-aur-" });
  try {
    await Deno.copyFile(join(aur, "PKGBUILD"), join(dir, "PKGBUILD"));
    await sh("chown", ["-R", "nobody", dir]);
    const output = await new Deno.Command("runuser", {
      args: ["-u", "nobody", "--", "makepkg", "--printsrcinfo"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout), await Deno.readTextFile(join(aur, ".SRCINFO")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shellcheck passes on the PKGBUILD, which keeps the compiled binary unstripped", async () => {
  const output = await new Deno.Command("shellcheck", { args: [join(aur, "PKGBUILD")], stdout: "piped" }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stdout));
  const text = await Deno.readTextFile(join(aur, "PKGBUILD"));
  assert.match(text, /^options=\('!strip' '!debug'\)$/m);
  assert.match(text, /^makedepends=\('deno' 'git'\)$/m);
  for (const dependency of ["qemu-base", "edk2-ovmf", "openssh", "rsync", "procps-ng"]) {
    assert.match(text, new RegExp(`^depends=\\(.*'${dependency}'`, "m"), dependency);
  }
});

Deno.test("the man page has every command, its synopsis, every option and positional, from the same definitions", async () => {
  const commands = await loadAllCommands();
  const page = renderManPage(commands, { version: "9.9", date: "2026-01-02" });
  assert.match(page, /^\.TH VIRTDEV 1 "2026-01-02" "virtdev 9\.9"/);
  const escape = (text: string) => text.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  for (const command of commands) {
    assert.ok(page.includes(`.SS ${command.name}\n`), command.name);
    assert.ok(page.includes(escape(synopsis(command))), `synopsis of ${command.name}`);
    assert.ok(page.includes(escape(command.brief)), `brief of ${command.name}`);
    for (const option of Object.values(command.options)) {
      assert.ok(page.includes(escape(option.description)), `${command.name} ${option.names[0]}`);
    }
  }
  assert.doesNotMatch(page, /^[.'](?!(TH|SH|SS|TP|PP|B|BI|I|RI|br|nf|fi)\b)/m, "no text line reads as a request");
});

Deno.test("package assets: man page, completions for bash, zsh and fish, and the command list (stubbed: the bundle stands in for the compiled binary)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "virtdev-assets-" });
  try {
    await sh(Deno.execPath(), ["task", "--cwd", repoRoot, "bundle"]);
    const binary = join(dir, "virtdev");
    await Deno.writeTextFile(
      binary,
      `#!/bin/sh\nexec ${Deno.execPath()} run -A ${join(repoRoot, "dist/bundle/main.js")} "$@"\n`,
      { mode: 0o755 },
    );
    const out = join(dir, "share");
    await sh(Deno.execPath(), ["run", "--frozen", "-A", join(repoRoot, "scripts/package_assets.ts"), binary, out]);
    const names = (await Deno.readTextFile(join(out, "commands"))).trim().split("\n");
    assert.deepEqual(names, (await loadAllCommands()).map((command) => command.name));
    assert.match(await Deno.readTextFile(join(out, "virtdev.1")), /^\.SS maintain$/m);
    await sh("bash", ["-n", join(out, "virtdev.bash")]);
    assert.match(await Deno.readTextFile(join(out, "virtdev.bash")), /complete .*virtdev/);
    assert.match(await Deno.readTextFile(join(out, "_virtdev")), /#compdef virtdev/);
    assert.match(await Deno.readTextFile(join(out, "virtdev.fish")), /complete -c virtdev/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
