/**
 * Writes what a package installs beside the binary: the man page (from the
 * command definitions), the bash, zsh and fish completions (from the
 * binary itself), and `commands`, one name per line, for the
 * `virtdev-<command>` links.
 *
 *   deno run --frozen --allow-read --allow-write=OUT --allow-run=BINARY scripts/package_assets.ts BINARY OUT
 */
import { loadAllCommands } from "../src/cli/commands.ts";
import { renderManPage } from "../src/cli/man_page.ts";
import { version } from "../src/version.ts";

const [binary, out] = Deno.args;
if (!binary || !out) {
  Deno.stderr.writeSync(new TextEncoder().encode("usage: package_assets.ts BINARY OUTDIR\n"));
  Deno.exit(64);
}
await Deno.mkdir(out, { recursive: true });
const commands = await loadAllCommands();
// SOURCE_DATE_EPOCH keeps package builds reproducible.
const epoch = Number(Deno.env.get("SOURCE_DATE_EPOCH") ?? Math.floor(Date.now() / 1000));
const date = new Date(epoch * 1000).toISOString().slice(0, 10);
await Deno.writeTextFile(`${out}/virtdev.1`, renderManPage(commands, { version, date }));
await Deno.writeTextFile(`${out}/commands`, commands.map((command) => `${command.name}\n`).join(""));
for (const [shell, file] of [["bash", "virtdev.bash"], ["zsh", "_virtdev"], ["fish", "virtdev.fish"]]) {
  const output = await new Deno.Command(binary, { args: ["completion", shell], stderr: "inherit" }).output();
  if (!output.success) throw new Error(`${binary} completion ${shell} failed`);
  await Deno.writeFile(`${out}/${file}`, output.stdout);
}
