/**
 * Builds the self-contained binary `dist/virtdev` with `deno compile`, with
 * the permissions of `binary_permissions.ts` baked in, from the bundle
 * (`deno task bundle`): the binary runs the very files CI tests. Every asset
 * it needs (the guest contract, the archiso overlay, completion) is code, so
 * the binary reads nothing from the checkout.
 *
 * `deno compile` needs the denort runtime: from dl.deno.land, from the cache
 * `$DENO_DIR/dl/release/v<version>/`, or from `DENORT_BIN`. Where none can
 * be had, this says so in one line.
 */
// Scripts talk to the developer directly.
// deno-lint-ignore-file no-console
import { binaryPermissionFlags, virtdevTaskCommand } from "./binary_permissions.ts";

const output = Deno.args[0] ?? "dist/virtdev";
const bundled = await new Deno.Command(Deno.execPath(), { args: ["task", "bundle"], stdout: "null" }).output();
if (!bundled.success) Deno.exit(bundled.code);
const args = [
  "compile",
  "--frozen",
  ...binaryPermissionFlags(await virtdevTaskCommand(), { self: "binary" }),
  "--output",
  output,
  // It loads dist/bundle/full_parse.js (help, completion, errors) by a literal import, which compile follows.
  "dist/bundle/main.js",
];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" }).spawn();
const { code, stderr } = await child.output();
const text = new TextDecoder().decode(stderr);
if (code !== 0) {
  if (/denort|dl\.deno\.land/i.test(text) && !Deno.env.get("DENORT_BIN")) {
    const version = Deno.version.deno;
    console.error(
      `compile: deno compile needs denort ${version}, and dl.deno.land cannot be reached: set DENORT_BIN to a denort ${version} executable, or put denort-x86_64-unknown-linux-gnu.zip in $DENO_DIR/dl/release/v${version}/ ('deno task bundle' works offline).`,
    );
  } else {
    Deno.stderr.writeSync(stderr);
  }
  Deno.exit(code);
}
Deno.stderr.writeSync(stderr);
console.error(`Built ${output}. Link virtdev-<command> names to it for direct commands.`);
