/**
 * Parsing and printing of byte sizes such as `24G` or `512MiB`.
 *
 * @module
 */

const _units: Readonly<Record<string, number>> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
  P: 1024 ** 5,
};

/**
 * Parses a size the way qemu-img reads one: a number with an optional
 * binary suffix (`K`, `M`, `G`, `T`, `P`, optionally followed by `B` or
 * `iB`). A bare number is bytes.
 *
 * @returns the size in bytes, rounded up to a whole byte.
 * @throws {RangeError} when the text is not a size.
 */
export function parseSize(text: string): number {
  const match = /^(\d+)(?:\.(\d+))?([KMGTP]?)(?:i?B)?$/i.exec(text.trim());
  if (!match || text.trim() === "") {
    throw new RangeError(`Not a size: '${text}'. Use a number with an optional unit, such as 512M or 24G.`);
  }
  const [, whole, fraction = "", unit] = match;
  const factor = _units[unit.toUpperCase()];
  const value = Number(`${whole}.${fraction || "0"}`) * factor;
  if (!Number.isSafeInteger(Math.ceil(value))) {
    throw new RangeError(`Size too large: '${text}'.`);
  }
  return Math.ceil(value);
}

/** Formats bytes with a binary unit, e.g. `1.5 GiB`. */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024;
    index++;
  }
  const digits = index === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[index]}`;
}
