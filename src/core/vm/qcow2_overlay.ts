/**
 * An empty qcow2 overlay over a qcow2 backing image, written in-process.
 *
 * `create` makes two of them; through qemu-img that is two processes whose
 * start-up (dynamic linking of QEMU's libraries) was most of create's work.
 * The image written here is what `qemu-img create -f qcow2 -b <backing>
 * -F qcow2` writes, minus the optional feature-name table: a version 3
 * header with the backing file's name and format, one cluster of refcount
 * table, one refcount block, and an all-zero L1 table (no cluster of the
 * overlay is allocated, so every read falls through to the backing file).
 *
 * Layout (64 KiB clusters): cluster 0 the header and backing name,
 * cluster 1 the refcount table, cluster 2 the refcount block, cluster 3 on
 * the L1 table, as qemu-img lays it out.
 *
 * @module
 */
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { privateFileMode } from "../store/file_modes.ts";

const _magic = 0x514649fb; // "QFI\xfb"
const _clusterBits = 16;
const _clusterSize = 1 << _clusterBits;
/** An L2 table maps cluster_size / 8 clusters: 512 MiB per L1 entry with 64 KiB clusters. */
const _bytesPerL1Entry = 2 ** (_clusterBits + _clusterBits - 3);
/** qcow2's limit on the backing file name. */
const _maxBackingName = 1023;
const _headerLength = 112;
const _backingFormatExtension = 0xe2792aca;

/**
 * The virtual size recorded in a qcow2 image's header.
 *
 * @throws {VirtdevError} when `path` is not a qcow2 image.
 */
export async function qcow2VirtualSize(path: string): Promise<number> {
  const header = new Uint8Array(32);
  using file = await Deno.open(path, { read: true });
  let filled = 0;
  while (filled < header.length) {
    const read = await file.read(header.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  const view = new DataView(header.buffer);
  const version = filled === header.length ? view.getUint32(4) : 0;
  if (filled < header.length || view.getUint32(0) !== _magic || (version !== 2 && version !== 3)) {
    throw new VirtdevError(`${path} is not a qcow2 image.`, {
      exitCode: ExitCode.failure,
      hint: "The base's images are qcow2 files that virtdev made; reinstall the base if one was replaced.",
    });
  }
  const size = view.getBigUint64(24);
  if (size === 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VirtdevError(`${path} has an impossible virtual size (${size} bytes).`, {
      exitCode: ExitCode.failure,
      hint: "The image is damaged; reinstall the base.",
    });
  }
  return Number(size);
}

/**
 * The backing file name recorded in a qcow2 image's header, read in-process
 * (`qemu-img info` costs a process per image), or `undefined` when it has
 * none or is not a qcow2 image.
 */
export async function qcow2BackingFile(path: string): Promise<string | undefined> {
  using file = await Deno.open(path, { read: true });
  const header = new Uint8Array(20);
  if (await _readFully(file, header) < header.length) return undefined;
  const view = new DataView(header.buffer);
  if (view.getUint32(0) !== _magic) return undefined;
  const offset = view.getBigUint64(8);
  const length = view.getUint32(16);
  if (offset === 0n || length === 0 || length > _maxBackingName || offset > BigInt(_clusterSize)) return undefined;
  await file.seek(Number(offset), Deno.SeekMode.Start);
  const name = new Uint8Array(length);
  if (await _readFully(file, name) < length) return undefined;
  return new TextDecoder().decode(name);
}

async function _readFully(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < into.length) {
    const read = await file.read(into.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  return filled;
}

/**
 * Writes a new, empty qcow2 image at `path` (which must not exist) over
 * the qcow2 image `backing` (an absolute path), of the backing's size, and
 * makes it durable. Mode 0600.
 */
export async function writeQcow2Overlay(path: string, backing: string): Promise<void> {
  const name = new TextEncoder().encode(backing);
  if (!backing.startsWith("/") || name.length > _maxBackingName) {
    throw new VirtdevError(`A backing file must be an absolute path of at most ${_maxBackingName} bytes: ${backing}`, {
      exitCode: ExitCode.failure,
    });
  }
  const size = await qcow2VirtualSize(backing);
  const l1Entries = Math.ceil(size / _bytesPerL1Entry);
  const l1Offset = 3 * _clusterSize;
  const l1Clusters = Math.ceil((l1Entries * 8) / _clusterSize);
  const usedClusters = 3 + l1Clusters;
  // One refcount block of 16-bit counts covers 32768 clusters; an L1 table
  // that large would describe a 512 PiB disk.
  if (usedClusters > _clusterSize / 2) {
    throw new VirtdevError(`${backing} is too large for an overlay (${size} bytes).`, { exitCode: ExitCode.failure });
  }

  const extensions = 8 + 8 + 8; // the backing format (5 bytes, padded to 8), then the end marker
  const backingOffset = _headerLength + extensions;
  const head = new Uint8Array(backingOffset + name.length);
  const h = new DataView(head.buffer);
  h.setUint32(0, _magic);
  h.setUint32(4, 3); // version
  h.setBigUint64(8, BigInt(backingOffset));
  h.setUint32(16, name.length);
  h.setUint32(20, _clusterBits);
  h.setBigUint64(24, BigInt(size));
  // 32: no encryption.
  h.setUint32(36, l1Entries);
  h.setBigUint64(40, BigInt(l1Offset));
  h.setBigUint64(48, BigInt(_clusterSize)); // refcount table
  h.setUint32(56, 1); // refcount table clusters
  // 60: no snapshots; 72, 80, 88: no incompatible, compatible or autoclear features.
  h.setUint32(96, 4); // refcount order: 16-bit refcounts
  h.setUint32(100, _headerLength);
  // 104: compression type zlib, then padding to 112.
  h.setUint32(_headerLength, _backingFormatExtension);
  h.setUint32(_headerLength + 4, 5);
  head.set(new TextEncoder().encode("qcow2"), _headerLength + 8);
  // The end-of-extensions marker is the next 8 zero bytes.
  head.set(name, backingOffset);

  const refcountTable = new Uint8Array(8);
  new DataView(refcountTable.buffer).setBigUint64(0, BigInt(2 * _clusterSize));
  const refcounts = new Uint8Array(usedClusters * 2);
  const counts = new DataView(refcounts.buffer);
  for (let cluster = 0; cluster < usedClusters; cluster++) counts.setUint16(cluster * 2, 1);

  using file = await Deno.open(path, { write: true, createNew: true, mode: privateFileMode });
  for (const [offset, bytes] of [[0, head], [_clusterSize, refcountTable], [2 * _clusterSize, refcounts]] as const) {
    await file.seek(offset, Deno.SeekMode.Start);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
  }
  // The L1 table is all zeros: a hole up to its end.
  await file.truncate(l1Offset + l1Entries * 8);
  await file.syncData();
}
