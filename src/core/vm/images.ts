/**
 * Disk images through qemu-img: create, inspect, check, convert, rebase
 * (a delta over a qcow2 base is written in-process: `qcow2_overlay.ts`).
 *
 * @module
 */
import { runTool } from "../store/process.ts";
import { makePrivate } from "../store/file_modes.ts";
import { writeQcow2Overlay } from "./qcow2_overlay.ts";

const _hint = "Install QEMU's image tools: 'pacman -S qemu-img' (Arch) or 'apt install qemu-utils' (Debian).";

/** What qemu-img says of one image. */
export interface ImageInfo {
  /** The image file. */
  readonly filename: string;
  /** The format, e.g. `qcow2`. */
  readonly format: string;
  /** The size the guest sees, in bytes. */
  readonly virtualSize: number;
  /** The bytes the file occupies on the host. */
  readonly actualSize: number;
  /** The absolute backing file, if any. */
  readonly backingFile: string | undefined;
}

interface _RawInfo {
  readonly filename: string;
  readonly format: string;
  readonly "virtual-size": number;
  readonly "actual-size"?: number;
  readonly "full-backing-filename"?: string;
  readonly "backing-filename"?: string;
}

function _toInfo(raw: _RawInfo): ImageInfo {
  return {
    filename: raw.filename,
    format: raw.format,
    virtualSize: raw["virtual-size"],
    actualSize: raw["actual-size"] ?? 0,
    backingFile: raw["full-backing-filename"] ?? raw["backing-filename"],
  };
}

/** Creates an empty qcow2 image of `sizeBytes`. */
export async function createImage(path: string, sizeBytes: number): Promise<void> {
  await runTool("qemu-img", ["create", "-q", "-f", "qcow2", path, String(sizeBytes)], { missingHint: _hint });
  await makePrivate(path);
}

/** Creates a thin qcow2 delta of `path` over the absolute `backing` image. */
export async function createDelta(path: string, backing: string): Promise<void> {
  // What 'qemu-img create -f qcow2 -b <backing> -F qcow2' writes, without its process.
  await writeQcow2Overlay(path, backing);
}

/**
 * Reads the image's metadata. `-U` lets it read an image a running VM holds.
 */
export async function imageInfo(path: string): Promise<ImageInfo> {
  const { stdout } = await runTool("qemu-img", ["info", "-U", "--output=json", path], { missingHint: _hint });
  return _toInfo(JSON.parse(stdout) as _RawInfo);
}

/** The image and every image below it, top first. */
export async function backingChain(path: string): Promise<ImageInfo[]> {
  const { stdout } = await runTool("qemu-img", ["info", "-U", "--backing-chain", "--output=json", path], {
    missingHint: _hint,
  });
  return (JSON.parse(stdout) as _RawInfo[]).map(_toInfo);
}

/** Whether `qemu-img check` finds the image consistent. */
export async function checkImage(path: string): Promise<boolean> {
  const { code } = await runTool("qemu-img", ["check", "-q", path], { allowFailure: true, missingHint: _hint });
  return code === 0;
}

/** Writes a standalone copy of `source` (backing data merged in) to `target`. */
export async function convertStandalone(source: string, target: string): Promise<void> {
  await runTool("qemu-img", ["convert", "-O", "qcow2", source, target], { missingHint: _hint });
  await makePrivate(target);
}

/**
 * Merges the backing data into `path` itself and drops the backing link.
 * qemu-img's safe rebase copies data first and rewrites the header last, so
 * an interruption leaves a valid image that still has its backing file.
 */
export async function rebaseStandalone(path: string): Promise<void> {
  await runTool("qemu-img", ["rebase", "-f", "qcow2", "-b", "", path], { missingHint: _hint });
}

/**
 * Points `path`'s backing link at `backing`, rewriting only the header
 * (`qemu-img rebase -u`): for a backing file with the same content under
 * another name, such as a kept base generation's hard link.
 */
export async function repointBacking(path: string, backing: string): Promise<void> {
  await runTool("qemu-img", ["rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", backing, path], {
    missingHint: _hint,
  });
}
