/**
 * The guest's serial console on the host: a log that never grows past its
 * cap, however much the guest writes, and a scanner that spots the lines
 * the guest contract prints (ready, not ready, installed) in a stream of
 * chunks with constant memory. Readers never need to read the log whole:
 * what matters is remembered as it streams past, and a tail is read from
 * the end.
 *
 * @module
 */
import { privateFileMode } from "../store/file_modes.ts";
import { stripTerminalControls } from "../guest/terminal_text.ts";

/**
 * Finds marker strings (ASCII) in a byte stream that arrives in chunks of
 * any size, holding back only the bytes a marker split across two chunks
 * needs.
 */
export class MarkerScanner {
  readonly #markers: readonly Uint8Array[];
  readonly #names: readonly string[];
  readonly #keep: number;
  #carry = new Uint8Array(0);

  constructor(markers: readonly string[]) {
    this.#names = markers;
    this.#markers = markers.map((marker) => new TextEncoder().encode(marker));
    this.#keep = Math.max(0, ...this.#markers.map((marker) => marker.length - 1));
  }

  /** The markers that end in `chunk`, in the order they appear. */
  push(chunk: Uint8Array): string[] {
    const data = new Uint8Array(this.#carry.length + chunk.length);
    data.set(this.#carry);
    data.set(chunk, this.#carry.length);
    const found: { readonly at: number; readonly name: string }[] = [];
    const carried = this.#carry.length;
    for (const [index, marker] of this.#markers.entries()) {
      for (let at = _indexOf(data, marker, 0); at !== -1; at = _indexOf(data, marker, at + 1)) {
        // One that ends in the carried bytes was reported with the last chunk.
        if (at + marker.length > carried) found.push({ at, name: this.#names[index] });
      }
    }
    this.#carry = data.slice(Math.max(0, data.length - this.#keep));
    return found.sort((a, b) => a.at - b.at).map((hit) => hit.name);
  }
}

function _indexOf(data: Uint8Array, marker: Uint8Array, from: number): number {
  const first = marker[0];
  for (
    let i = data.indexOf(first, from);
    i !== -1 && i + marker.length <= data.length;
    i = data.indexOf(first, i + 1)
  ) {
    let match = true;
    for (let j = 1; j < marker.length; j++) {
      if (data[i + j] !== marker[j]) {
        match = false;
        break;
      }
    }
    if (match) return i;
  }
  return -1;
}

/**
 * A log file capped at `maxBytes` on disk: it is written in two halves,
 * `path` and `path.1`; when `path` would pass half the cap it becomes
 * `path.1` (replacing the older half) and a new `path` begins. A single
 * write larger than half the cap keeps only its end.
 */
export class CappedLog {
  readonly #path: string;
  readonly #half: number;
  #file: Deno.FsFile;
  #size: number;

  private constructor(path: string, half: number, file: Deno.FsFile) {
    this.#path = path;
    this.#half = half;
    this.#file = file;
    this.#size = 0;
  }

  /**
   * Starts a new log at `path`; an existing one becomes `path.1`.
   *
   * @param options.maxBytes the most bytes both halves may hold together.
   */
  static async create(path: string, options: { readonly maxBytes: number }): Promise<CappedLog> {
    await Deno.rename(path, `${path}.1`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    const file = await CappedLog.#open(path);
    return new CappedLog(path, Math.max(1, Math.floor(options.maxBytes / 2)), file);
  }

  static async #open(path: string): Promise<Deno.FsFile> {
    const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: privateFileMode });
    await Deno.chmod(path, privateFileMode);
    return file;
  }

  /** Appends `chunk`, rotating first when it would pass the half. */
  async write(chunk: Uint8Array): Promise<void> {
    let data = chunk;
    if (data.length > this.#half) data = data.subarray(data.length - this.#half);
    if (this.#size + data.length > this.#half) {
      this.#file.close();
      await Deno.rename(this.#path, `${this.#path}.1`);
      this.#file = await CappedLog.#open(this.#path);
      this.#size = 0;
    }
    let written = 0;
    while (written < data.length) written += await this.#file.write(data.subarray(written));
    this.#size += data.length;
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * The last `lines` non-empty lines of the console log at `path` (read from
 * its last `maxBytes`), without the guest's control sequences: what a
 * person is shown, or vm.log keeps, of a console.
 */
export async function consoleTailLines(
  path: string,
  options: { readonly lines: number; readonly maxBytes: number },
): Promise<string[]> {
  const text = await readFileTail(path, options.maxBytes).catch(() => undefined) ?? "";
  return stripTerminalControls(text).split("\n").map((line) => line.trim()).filter((line) => line !== "")
    .slice(-options.lines);
}

/**
 * The last `maxBytes` of the file at `path` (fewer when it is smaller),
 * decoded as UTF-8, or `undefined` when there is no such file.
 */
export async function readFileTail(path: string, maxBytes: number): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - maxBytes);
    await file.seek(start, Deno.SeekMode.Start);
    const buffer = new Uint8Array(size - start);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, filled));
  } finally {
    file.close();
  }
}

/**
 * Reads what is appended to the file at `path` since the last call, at
 * most `maxBytes` per call, and passes it to `onData`; for following a log
 * that another process writes without ever reading it twice.
 */
export class FileFollower {
  readonly #path: string;
  readonly #maxBytes: number;
  #offset = 0;

  constructor(path: string, options: { readonly maxBytes?: number } = {}) {
    this.#path = path;
    this.#maxBytes = options.maxBytes ?? 1 << 20;
  }

  /** Reads the next appended bytes; an empty array when there are none. */
  async read(): Promise<Uint8Array> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return new Uint8Array(0);
      throw error;
    }
    try {
      const size = (await file.stat()).size;
      if (size < this.#offset) this.#offset = 0; // replaced or truncated: start again
      await file.seek(this.#offset, Deno.SeekMode.Start);
      const buffer = new Uint8Array(Math.min(this.#maxBytes, size - this.#offset));
      let filled = 0;
      while (filled < buffer.length) {
        const n = await file.read(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      this.#offset += filled;
      return buffer.subarray(0, filled);
    } finally {
      file.close();
    }
  }
}
