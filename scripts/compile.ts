/**
 * Builds the self-contained binary `dist/virtdev` with `deno compile`.
 *
 * The run and env permissions are those of the `virtdev` task. Read and
 * write cannot name the user's directories at build time, so the binary may
 * read and write where its user can; virtdev itself only touches the paths
 * of its configuration.
 *
 * `deno compile` needs the denort runtime: from dl.deno.land, from the cache
 * `$DENO_DIR/dl/release/v<version>/`, or from `DENORT_BIN`.
 */
// Scripts talk to the developer directly.
// deno-lint-ignore-file no-console
const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
const task: string = config.tasks.virtdev.command;
const allow = (flag: string): string => {
  const match = new RegExp(`--allow-${flag}=(\\S+)`).exec(task);
  if (!match) throw new Error(`The virtdev task has no --allow-${flag}.`);
  return `--allow-${flag}=${match[1]}`;
};
// The binary starts itself as each VM's host agent: by its path, or as
// `virtdev` from PATH; it has no `deno` to run.
const run = allow("run").replace(/=deno,/, "=virtdev,");
const args = [
  "compile",
  "--frozen",
  "--no-prompt",
  run,
  allow("env"),
  allow("sys"),
  "--allow-read",
  "--allow-write",
  // As the task: Deno scopes unix sockets (QMP, the console) only by exact path.
  "--allow-net",
  "--output",
  "dist/virtdev",
  "src/main.ts",
];
const { code } = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "inherit" }).output();
if (code !== 0) {
  console.error(
    [
      "",
      "deno compile failed. It needs the denort runtime for this deno version, which it downloads from",
      `dl.deno.land (denort-x86_64-unknown-linux-gnu.zip, deno ${Deno.version.deno}).`,
      "Where that host is unreachable, put the zip in $DENO_DIR/dl/release/v" + Deno.version.deno + "/,",
      "or set DENORT_BIN to a denort executable. 'deno task bundle' works offline.",
    ].join("\n"),
  );
  Deno.exit(code);
}
console.error("Built dist/virtdev. Link virtdev-<command> names to it for direct commands.");
