/**
 * Writes src/cli/help_pages.ts: every help page, rendered from the
 * commands' syntax (`src/cli/help_text.ts`). Run after changing a command's
 * options or texts: `deno task help-pages`. tests/help_pages_test.ts fails
 * while the file is out of date.
 *
 * @module
 */
import { renderHelpPagesModule } from "../src/cli/help_pages_module.ts";
import { loadAllCommands } from "../src/cli/commands.ts";

const path = new URL("../src/cli/help_pages.ts", import.meta.url);
const text = renderHelpPagesModule(await loadAllCommands());
const temporary = new URL(`../src/cli/.help_pages.${Deno.pid}.tmp`, import.meta.url);
await Deno.writeTextFile(temporary, text);
await Deno.rename(temporary, path);
// Formatted as the rest of the source, so that 'deno fmt --check' passes.
const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path.pathname] }).output();
if (!fmt.success) throw new Error(new TextDecoder().decode(fmt.stderr));
