/**
 * The PROJECT argument: accepted as typed (the handler checks the name rule
 * and exits 2), completed from the projects that exist.
 *
 * @module
 */
import { message } from "@optique/core/message";
import { argument } from "@optique/core/primitives";
import type { Suggestion } from "@optique/core/parser";
import type { ValueParser } from "@optique/core/valueparser";
import { loadConfig, processEnvironment } from "../core/store/config.ts";
import { isProjectEntryName } from "../core/store/store.ts";

// Completion is synchronous, so this is Store.listProjects() without await.
function _projectNames(): string[] {
  try {
    const { home } = loadConfig(processEnvironment());
    const names: string[] = [];
    for (const entry of Deno.readDirSync(`${home}/projects`)) {
      if (entry.isDirectory && isProjectEntryName(entry.name)) names.push(entry.name);
    }
    return names.sort();
  } catch {
    return [];
  }
}

/** A value parser for project names that completes existing projects. */
export function projectName(): ValueParser<"sync", string> {
  return {
    mode: "sync",
    metavar: "PROJECT",
    placeholder: "",
    parse: (input) => ({ success: true, value: input }),
    format: (value) => value,
    *suggest(prefix: string): Iterable<Suggestion> {
      for (const name of _projectNames()) {
        if (name.startsWith(prefix)) yield { kind: "literal", text: name };
      }
    },
  };
}

/** The PROJECT positional. */
export function projectArgument(description = message`The project.`) {
  return argument(projectName(), { description });
}
