/**
 * Reading a known span of a file.
 *
 * @module
 */

/** `length` bytes of `file` from `offset`; undefined when the file ends first. */
export async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array | undefined> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buffer = new Uint8Array(length);
  for (let read = 0; read < length;) {
    const n = await file.read(buffer.subarray(read));
    if (n === null) return undefined;
    read += n;
  }
  return buffer;
}
