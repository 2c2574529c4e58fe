/**
 * `resize`: grows one of a stopped project's disks. The delta's virtual
 * size grows (qemu-img resize; the base is untouched, reads past its end
 * are zeros); the guest grows its partition and file system at the next
 * boot (the contract's `virtdev-grow` unit). Shrinking is refused: it
 * would cut a file system that does not know.
 *
 * @module
 */
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { formatSize, parseSize } from "../store/size.ts";
import type { Store } from "../store/store.ts";
import { imageInfo } from "../vm/images.ts";
import { requireProject } from "./project_lookup.ts";
import { requireStopped } from "./project_state.ts";

/** Exit codes of `resize`. */
export const ResizeExit = { running: 4, shrink: 6, invalidSize: 7 } as const;

/** The disks `resize` grows. */
export const resizableDisks = ["home", "system"] as const;

/** What a resize did. */
export interface ResizeResult {
  readonly before: number;
  readonly after: number;
}

/** The size asked for: absolute (`50G`), or added to the current one (`+1G`). */
export function targetSize(text: string, current: number): number {
  const relative = text.startsWith("+");
  let bytes: number;
  try {
    bytes = parseSize(relative ? text.slice(1) : text);
  } catch {
    throw new VirtdevError(`Not a size: '${text}'.`, {
      exitCode: ResizeExit.invalidSize,
      hint: "Give the new size (50G) or what to add (+10G).",
    });
  }
  // qcow2 sizes are whole sectors.
  const target = relative ? current + bytes : bytes;
  return Math.ceil(target / 512) * 512;
}

/**
 * Grows `disk` of stopped project `name` to `size`.
 *
 * @throws {VirtdevError} exit 4 while it runs, 6 for a shrink, 7 for a bad size.
 */
export async function resizeProjectDisk(
  store: Store,
  name: string,
  options: { readonly disk: (typeof resizableDisks)[number]; readonly size: string },
): Promise<ResizeResult> {
  const paths = await requireProject(store, name);
  await requireStopped(store, name, ResizeExit.running, { what: "resize it" });
  const image = options.disk === "home" ? paths.homeImage : paths.systemImage;
  const before = (await imageInfo(image)).virtualSize;
  const after = targetSize(options.size, before);
  if (after < before) {
    throw new VirtdevError(
      `virtdev grows disks only: ${name}'s ${options.disk} disk is ${formatSize(before)}, and ${
        formatSize(after)
      } would cut its file system.`,
      {
        exitCode: ResizeExit.shrink,
        hint: "To start smaller, back up, destroy and create the project with a smaller VIRTDEV_HOME_DISK_SIZE base.",
      },
    );
  }
  if (after > before) {
    await runTool("qemu-img", ["resize", "-q", "-f", "qcow2", image, String(after)]);
  }
  return { before, after };
}
