/**
 * The permissions the compiled binary bakes in, derived from the `virtdev`
 * task so that there is one list: the same programs and variables; read
 * and write anywhere its user can (they cannot name the user's directories
 * at build time; virtdev itself touches only the paths of its
 * configuration); unscoped net, because Deno scopes unix sockets (QMP, the
 * console) only by exact path.
 *
 * The tests run the bundle with these flags too (`VIRTDEV_TEST_ENTRY=bundle`),
 * so the permission set that ships is the one tested.
 *
 * @module
 */

/**
 * The `--allow-…` flags of the binary. `self` is what runs a VM's host
 * agent: the binary itself (as /proc/self/exe: it may be installed
 * anywhere), or `deno` for the bundle.
 */
export function binaryPermissionFlags(taskCommand: string, options: { readonly self: "binary" | "deno" }): string[] {
  const allow = (flag: string): string => {
    const match = new RegExp(`--allow-${flag}=(\\S+)`).exec(taskCommand);
    if (!match) throw new Error(`The virtdev task has no --allow-${flag}.`);
    return `--allow-${flag}=${match[1]}`;
  };
  const run = options.self === "binary" ? allow("run").replace(/=deno,/, "=/proc/self/exe,") : allow("run");
  return ["--no-prompt", run, allow("env"), allow("sys"), "--allow-read", "--allow-write", "--allow-net"];
}

/** The `virtdev` task's command line, from deno.json. */
export async function virtdevTaskCommand(): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  return config.tasks.virtdev.command;
}
