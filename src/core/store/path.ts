/**
 * POSIX path arithmetic, with node:path's results for the functions virtdev
 * uses (`path_test.ts` compares them). Its own module because loading any
 * `node:` module starts Deno's Node compatibility layer, which costs a
 * short command about a third of its run time.
 *
 * @module
 */

/** Resolves `.` and `..` segments and repeated slashes; keeps a trailing slash. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length > 0 && segments[segments.length - 1] !== "..") segments.pop();
      else if (!absolute) segments.push("..");
      continue;
    }
    segments.push(segment);
  }
  const joined = segments.join("/");
  if (absolute) return `/${joined}` + (joined !== "" && path.endsWith("/") ? "/" : "");
  if (joined === "") return path.endsWith("/") ? "./" : ".";
  return path.endsWith("/") ? `${joined}/` : joined;
}

/** Joins path segments and normalises the result. */
export function join(...segments: readonly string[]): string {
  const joined = segments.filter((segment) => segment !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/** Whether `path` starts at the root. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

function _trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  return path.slice(0, end);
}

/** The directory part of `path` (slashes inside it are kept as node:path keeps them). */
export function dirname(path: string): string {
  if (path === "") return ".";
  const hasRoot = path.startsWith("/");
  let end = -1;
  let inTrailingSlashes = true;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] === "/") {
      if (!inTrailingSlashes) {
        end = i;
        break;
      }
    } else {
      inTrailingSlashes = false;
    }
  }
  if (end === -1) return hasRoot ? "/" : ".";
  if (hasRoot && end === 1) return "//";
  return path.slice(0, end);
}

/** The last segment of `path`. */
export function basename(path: string): string {
  const trimmed = _trimTrailingSlashes(path);
  if (trimmed === "/") return "";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** An absolute, normalised path: `segments` joined from the right, on top of the working directory. */
export function resolve(...segments: readonly string[]): string {
  let resolved = "";
  for (let i = segments.length - 1; i >= 0 && !resolved.startsWith("/"); i--) {
    if (segments[i] !== "") resolved = resolved === "" ? segments[i] : `${segments[i]}/${resolved}`;
  }
  if (!resolved.startsWith("/")) resolved = resolved === "" ? Deno.cwd() : `${Deno.cwd()}/${resolved}`;
  return _trimTrailingSlashes(normalize(resolved));
}

/** The path from `from` to `to`, both resolved first. */
export function relative(from: string, to: string): string {
  const source = resolve(from).split("/").filter((segment) => segment !== "");
  const target = resolve(to).split("/").filter((segment) => segment !== "");
  let common = 0;
  while (common < source.length && common < target.length && source[common] === target[common]) common++;
  return [...source.slice(common).map(() => ".."), ...target.slice(common)].join("/");
}
