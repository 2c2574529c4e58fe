/**
 * `deno task bundle`: virtdev as `dist/bundle/main.js`, one file with all of
 * virtdev's own code, and `dist/bundle/full_parse.js`, the CLI library
 * (Optique) with the full parser, which main.js loads only for help,
 * completion and usage errors: parsing 660 KB of library on every command
 * would cost more than most commands take to run.
 */
// Scripts talk to the developer directly.
// deno-lint-ignore-file no-console
const out = "dist/bundle";
await Deno.remove(out, { recursive: true }).catch(() => {});

async function bundle(entry: string, output: string, extra: readonly string[] = []): Promise<void> {
  const args = ["bundle", "--frozen", "--platform=deno", ...extra, "-o", output, entry];
  const { code, stderr } = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
  if (code !== 0) {
    Deno.stderr.writeSync(stderr);
    Deno.exit(code);
  }
}

await bundle("src/main.ts", `${out}/main.js`, ["--external", "./full_parse.ts"]);
await bundle("src/cli/full_parse.ts", `${out}/full_parse.js`);
// The one import left outside: point it at the second file.
const main = await Deno.readTextFile(`${out}/main.js`);
const from = 'import("./full_parse.ts")';
if (main.split(from).length !== 2) throw new Error(`${out}/main.js should load ./full_parse.ts exactly once.`);
await Deno.writeTextFile(`${out}/main.js`, main.replace(from, 'import("./full_parse.js")'));
for (const file of ["main.js", "full_parse.js"]) {
  console.error(`${out}/${file}: ${((await Deno.stat(`${out}/${file}`)).size / 1024).toFixed(0)} KB`);
}
