/**
 * The help pages rendered ahead of time are those of the commands as they
 * are (run 'deno task help-pages' when this fails), and help is answered
 * from them without loading the CLI library.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadAllCommands } from "../src/cli/commands.ts";
import { renderCommandHelp, renderProgramHelp } from "../src/cli/help_text.ts";
import { commandHelp, programHelp } from "../src/cli/help_pages.ts";
import { helpRequest } from "../src/cli/help_request.ts";
import { repoRoot } from "./_helpers.ts";

Deno.test("help_pages.ts holds the pages of the commands as they are (else: deno task help-pages)", async () => {
  const commands = await loadAllCommands();
  assert.equal(programHelp, renderProgramHelp(commands));
  assert.deepEqual(Object.keys(commandHelp), commands.map((command) => command.name));
  for (const command of commands) assert.equal(commandHelp[command.name], renderCommandHelp(command), command.name);
});

Deno.test("help requests are told from the words alone; other lines are left to the parser", () => {
  assert.deepEqual(helpRequest(["--help"]), { page: "program" });
  assert.deepEqual(helpRequest(["-h"]), { page: "program" });
  assert.deepEqual(helpRequest(["help"]), { page: "program" });
  assert.deepEqual(helpRequest(["help", "start"]), { page: "command", name: "start" });
  assert.deepEqual(helpRequest(["start", "--help"]), { page: "command", name: "start" });
  for (const line of [["start", "p", "--help"], ["ssh", "p", "--", "--help"], ["help", "--json"], ["--help", "x"]]) {
    assert.equal(helpRequest(line), undefined, line.join(" "));
  }
});

Deno.test("help text wraps its paragraphs and lists every option of the command", () => {
  const page = commandHelp["backup"];
  // The brief (the first line) and the synopsis stay whole, as the command list shows them.
  for (const line of page.split("\n").slice(2)) assert.ok(line.length <= 80 || !line.includes(" "), line);
  for (const word of ["--verbose", "--list", "--json", "--latest", "--keep N", "--color WHEN", "PROJECT"]) {
    assert.ok(page.includes(word), word);
  }
});

Deno.test("help loads no command and no part of the CLI library: the pages and the request rule import nothing", async () => {
  for (const module of ["src/cli/help_pages.ts", "src/cli/help_request.ts"]) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", join(repoRoot, module)],
    }).output();
    assert.equal(output.code, 0);
    const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: { specifier: string }[] };
    assert.deepEqual(graph.modules.map((m) => m.specifier), [new URL(`file://${join(repoRoot, module)}`).href], module);
  }
  // And the entry reaches them before anything else is imported.
  const main = await Deno.readTextFile(join(repoRoot, "src/main.ts"));
  assert.ok(main.indexOf('import("./cli/help_pages.ts")') < main.indexOf('import("./cli/app.ts")'));
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "-A", join(repoRoot, "src/main.ts"), "start", "--help"],
  }).output();
  assert.equal(output.code, 0);
  assert.equal(new TextDecoder().decode(output.stdout), commandHelp["start"]);
});
