/**
 * Where zones and allowlists are kept, and how they become a policy:
 *
 * - the project's zone in its `net` file (a built-in zone, or a custom
 *   zone's name); a project made before zones existed has none and keeps
 *   `full`, what it had;
 * - the project's allowlist in its `allow` file, one pattern a line;
 * - a custom zone in `$XDG_CONFIG_HOME/virtdev/zones/NAME.zone`: a line
 *   `zone BUILTIN` naming the zone it builds on, then patterns allowed on
 *   top, in the allowlist's format.
 *
 * @module
 */
import { ExitCode, VirtdevError } from "../../store/errors.ts";
import { join } from "../../store/path.ts";
import { type ProjectPaths, readOptionalText } from "../../store/store.ts";
import { writeFileAtomic } from "../../store/atomic_write.ts";
import { type AllowPattern, expandSets, formatAllowPattern, parseAllowFile } from "./allow_pattern.ts";
import { builtinZones, type EgressPolicy, type Zone } from "./zone_policy.ts";

/** The zone of a project that never chose one: what such projects always had. */
export const legacyZone = "full";
/** The zone of a new project. */
export const newProjectZone = "wan";

const _customName = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** Whether `name` is a built-in zone. */
export function isBuiltinZone(name: string): name is Zone {
  return (builtinZones as readonly string[]).includes(name);
}

/** The file of custom zone `name`. */
export function customZonePath(configDir: string, name: string): string {
  return join(configDir, "zones", `${name}.zone`);
}

/** The project's allowlist file. */
export function allowlistPath(paths: ProjectPaths): string {
  return join(paths.dir, "allow");
}

/** The project's blocked log. */
export function blockedLogPath(paths: ProjectPaths): string {
  return join(paths.dir, "net-blocked.log");
}

/**
 * Checks a zone name given on the command line.
 *
 * @throws {VirtdevError} exit 64 when it is neither built in nor a custom zone's file.
 */
export async function checkZoneName(configDir: string, name: string): Promise<void> {
  if (isBuiltinZone(name)) return;
  if (_customName.test(name) && await readOptionalText(customZonePath(configDir, name)) !== undefined) return;
  throw _noSuchZone(configDir, name);
}

function _noSuchZone(configDir: string, name: string): VirtdevError {
  return new VirtdevError(`There is no zone '${name}'.`, {
    exitCode: ExitCode.usage,
    hint: `The zones are ${builtinZones.join(", ")}, and custom zones in ${join(configDir, "zones")}/NAME.zone.`,
  });
}

/**
 * The zone kept for the project (`full` for a project made before zones).
 *
 * @throws {VirtdevError} exit 70 when the file holds something no zone is called.
 */
export async function readProjectZone(paths: ProjectPaths): Promise<string> {
  const text = (await readOptionalText(paths.egress))?.trim();
  if (text === undefined || text === "") return legacyZone;
  if (!isBuiltinZone(text) && !_customName.test(text)) {
    throw new VirtdevError(`The network setting of ${paths.name} is unreadable: ${paths.egress}.`, {
      exitCode: 70,
      hint: `Set it again: virtdev net ${paths.name} wan`,
    });
  }
  return text;
}

/** Keeps `zone` for the project's next starts. */
export async function writeProjectZone(paths: ProjectPaths, zone: string): Promise<void> {
  await writeFileAtomic(paths.egress, `${zone}\n`);
}

/**
 * The project's allowlist as written (sets not expanded).
 *
 * @throws {VirtdevError} exit 2 naming the file and line of a pattern that does not parse.
 */
export async function readAllowlist(paths: ProjectPaths): Promise<AllowPattern[]> {
  return _readPatternFile(allowlistPath(paths), (await readOptionalText(allowlistPath(paths))) ?? "");
}

/** Writes the project's allowlist. */
export async function writeAllowlist(paths: ProjectPaths, patterns: readonly AllowPattern[]): Promise<void> {
  const lines = patterns.map(formatAllowPattern);
  await writeFileAtomic(allowlistPath(paths), lines.length ? `${lines.join("\n")}\n` : "");
}

/**
 * The policy for zone `zone` of the project: the zone (a custom zone's
 * base), with the project's allowlist and the custom zone's patterns on
 * top, sets expanded.
 *
 * @throws {VirtdevError} exit 64 for an unknown zone, exit 2 for a pattern
 *   that does not parse (naming its file and line).
 */
export async function resolvePolicy(
  paths: ProjectPaths,
  options: { readonly configDir: string; readonly zone: string },
): Promise<EgressPolicy> {
  const own = await readAllowlist(paths);
  if (isBuiltinZone(options.zone)) return { zone: options.zone, name: options.zone, allowed: expandSets(own) };
  const file = customZonePath(options.configDir, options.zone);
  // Read once: whether it exists is whether it reads.
  const text = _customName.test(options.zone) ? await readOptionalText(file) : undefined;
  if (text === undefined) throw _noSuchZone(options.configDir, options.zone);
  const base = /^\s*zone\s+(\S+)\s*$/m.exec(text.replace(/#.*$/gm, ""));
  if (!base || !isBuiltinZone(base[1])) {
    const line = base ? text.split("\n").findIndex((l) => /^\s*zone\s/.test(l)) + 1 : 1;
    throw new VirtdevError(
      `${file}:${line}: a custom zone needs a line 'zone BUILTIN', BUILTIN one of ${builtinZones.join(", ")}.`,
      { exitCode: ExitCode.invalidName, hint: "Correct the file; nothing was changed." },
    );
  }
  const patterns = _readPatternFile(file, text.replace(/^\s*zone\s.*$/m, ""));
  return { zone: base[1], name: options.zone, allowed: expandSets([...patterns, ...own]) };
}

function _readPatternFile(file: string, text: string): AllowPattern[] {
  const { patterns, problems } = parseAllowFile(text);
  if (problems.length > 0) {
    const [first] = problems;
    throw new VirtdevError(`${file}:${first.line}: ${first.message}`, {
      exitCode: ExitCode.invalidName,
      hint: [
        ...problems.slice(1, 4).map((p) => `${file}:${p.line}: ${p.message}`),
        "Correct the file; nothing was changed.",
      ],
    });
  }
  return patterns;
}
