/**
 * Snapshots of a whole project (`virtdev snapshot`): an internal qcow2
 * snapshot of each delta under the same name, plus a copy of the firmware
 * variables in `snapshots/<name>.nvram`, taken while the VM is stopped.
 * They live inside the project's own disks: quick to take and to revert
 * to, gone with the disks (`recreate`, `destroy`). Backups are the other
 * thing: files copied out of the guest, kept outside the project.
 *
 * The nvram copy is written last and removed first, so it marks a whole
 * snapshot. A take or a delete leaves a marker (`snapshots/.taking-<name>`,
 * `.deleting-<name>`) for its duration, so the remains of a crash are
 * cleared by the next snapshot command, and only those: internal snapshots
 * virtdev did not make (`qemu-img snapshot` by hand) are never touched. A
 * revert is journalled (`snapshots/.revert`) and finished by the next
 * snapshot command or start.
 *
 * @module
 */
import { copyFileAtomic, writeFileAtomic } from "../store/atomic_write.ts";
import { crashPoint } from "../store/crash_point.ts";
import { VirtdevError } from "../store/errors.ts";
import { ensurePrivateDirectory } from "../store/file_modes.ts";
import { join } from "../store/path.ts";
import { runTool } from "../store/process.ts";
import { pathExists, type ProjectPaths, readOptionalText, type Store } from "../store/store.ts";
import { requireProject } from "./project_lookup.ts";
import { requireStopped } from "./project_state.ts";

/** Exit codes of `snapshot`. */
export const SnapshotExit = { running: 4, missing: 5, exists: 6, invalidName: 7 } as const;

/** A snapshot name: what qemu-img and a file name both take plainly. */
const _namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** One snapshot of a project. */
export interface DiskSnapshot {
  readonly name: string;
  /** When it was taken (ISO 8601, UTC). */
  readonly createdAt: string;
}

interface _QemuSnapshot {
  readonly name: string;
  readonly "date-sec": number;
}

const _hint = "Install qemu-img: 'pacman -S qemu-img' (Arch) or 'apt install qemu-utils' (Debian).";

async function _internalSnapshots(image: string): Promise<_QemuSnapshot[]> {
  const { stdout } = await runTool("qemu-img", ["info", "-U", "--output=json", image], { missingHint: _hint });
  return (JSON.parse(stdout).snapshots ?? []) as _QemuSnapshot[];
}

function _nvramCopy(paths: ProjectPaths, name: string): string {
  return join(paths.snapshotsDir, `${name}.nvram`);
}

/** The marker of a take or a delete in progress. */
function _marker(paths: ProjectPaths, doing: "taking" | "deleting", name: string): string {
  return join(paths.snapshotsDir, `.${doing}-${name}`);
}

function _revertJournal(paths: ProjectPaths): string {
  return join(paths.snapshotsDir, ".revert");
}

/**
 * Checks a snapshot name.
 *
 * @throws {VirtdevError} exit 7.
 */
export function validateSnapshotName(name: string): string {
  if (!_namePattern.test(name)) {
    throw new VirtdevError(`Invalid snapshot name: ${JSON.stringify(name)}.`, {
      exitCode: SnapshotExit.invalidName,
      hint: "1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-', starting with a letter or digit.",
    });
  }
  return name;
}

/** The default name of a new snapshot: the UTC time, `2026-12-02T10-30-00`. */
export function defaultSnapshotName(now = new Date()): string {
  return now.toISOString().slice(0, 19).replaceAll(":", "-");
}

/** The project's whole snapshots, oldest first. */
export async function listDiskSnapshots(paths: ProjectPaths): Promise<DiskSnapshot[]> {
  const system = await _internalSnapshots(paths.systemImage);
  const home = new Set((await _internalSnapshots(paths.homeImage)).map((s) => s.name));
  const found: DiskSnapshot[] = [];
  for (const snapshot of system) {
    if (!home.has(snapshot.name) || !await pathExists(_nvramCopy(paths, snapshot.name))) continue;
    found.push({ name: snapshot.name, createdAt: new Date(snapshot["date-sec"] * 1000).toISOString() });
  }
  // qemu-img lists them as they were taken (by id): times have whole seconds only.
  return found;
}

/**
 * Finishes an interrupted revert, and clears what a crashed take or delete
 * left: a take that had not written its nvram copy is undone, one that
 * had is kept; a delete is finished. Call with the VM stopped, under the
 * store lock.
 *
 * @returns whether a revert was finished.
 */
export async function recoverDiskSnapshots(paths: ProjectPaths): Promise<boolean> {
  const pending = (await readOptionalText(_revertJournal(paths)))?.trim();
  let finished = false;
  if (pending && _namePattern.test(pending) && await pathExists(_nvramCopy(paths, pending))) {
    await _applySnapshot(paths, pending);
    finished = true;
  }
  await Deno.remove(_revertJournal(paths)).catch(() => {});
  const markers: { doing: "taking" | "deleting"; name: string }[] = [];
  try {
    for await (const entry of Deno.readDir(paths.snapshotsDir)) {
      const match = /^\.(taking|deleting)-(.+)$/.exec(entry.name);
      if (match && _namePattern.test(match[2])) {
        markers.push({ doing: match[1] as "taking" | "deleting", name: match[2] });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const { doing, name } of markers) {
    if (doing === "deleting" || !await pathExists(_nvramCopy(paths, name))) await _removeSnapshot(paths, name);
    await Deno.remove(_marker(paths, doing, name));
  }
  return finished;
}

/** Removes snapshot `name` from both disks (each where it is) and its nvram copy. */
async function _removeSnapshot(paths: ProjectPaths, name: string): Promise<void> {
  await Deno.remove(_nvramCopy(paths, name)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  for (const image of [paths.systemImage, paths.homeImage]) {
    if ((await _internalSnapshots(image)).some((s) => s.name === name)) {
      await runTool("qemu-img", ["snapshot", "-d", name, image], { missingHint: _hint });
    }
  }
}

/** Finishes a revert a crash interrupted, if there is one (cheap otherwise: one stat). */
export async function finishInterruptedRevert(paths: ProjectPaths): Promise<boolean> {
  if (!await pathExists(_revertJournal(paths))) return false;
  return await recoverDiskSnapshots(paths);
}

async function _applySnapshot(paths: ProjectPaths, name: string): Promise<void> {
  await runTool("qemu-img", ["snapshot", "-a", name, paths.systemImage], { missingHint: _hint });
  crashPoint("snapshot.revert-system");
  await runTool("qemu-img", ["snapshot", "-a", name, paths.homeImage], { missingHint: _hint });
  await copyFileAtomic(_nvramCopy(paths, name), paths.nvram);
}

async function _stoppedProject(store: Store, name: string): Promise<ProjectPaths> {
  const paths = await requireProject(store, name);
  await requireStopped(store, name, SnapshotExit.running, { what: "take, revert or delete its snapshots" });
  await recoverDiskSnapshots(paths);
  return paths;
}

async function _requireSnapshot(paths: ProjectPaths, name: string): Promise<void> {
  if (!(await listDiskSnapshots(paths)).some((s) => s.name === name)) {
    throw new VirtdevError(`${paths.name} has no snapshot ${name}.`, {
      exitCode: SnapshotExit.missing,
      hint: `List them with 'virtdev snapshot --list ${paths.name}'.`,
    });
  }
}

/** Takes snapshot `name` of stopped project `project`. Call under the store lock. */
export async function takeDiskSnapshot(store: Store, project: string, name: string): Promise<DiskSnapshot> {
  validateSnapshotName(name);
  const paths = await _stoppedProject(store, project);
  if ((await listDiskSnapshots(paths)).some((s) => s.name === name)) {
    throw new VirtdevError(`${project} already has a snapshot ${name}.`, {
      exitCode: SnapshotExit.exists,
      hint: `Delete it first ('virtdev snapshot --delete ${project} ${name}'), or choose another name.`,
    });
  }
  for (const image of [paths.systemImage, paths.homeImage]) {
    if ((await _internalSnapshots(image)).some((s) => s.name === name)) {
      throw new VirtdevError(`${image} already holds an internal snapshot ${name} that virtdev did not make.`, {
        exitCode: SnapshotExit.exists,
        hint: `Choose another name; virtdev leaves snapshots it did not make alone.`,
      });
    }
  }
  await ensurePrivateDirectory(paths.snapshotsDir);
  await writeFileAtomic(_marker(paths, "taking", name), "");
  await runTool("qemu-img", ["snapshot", "-c", name, paths.systemImage], { missingHint: _hint });
  crashPoint("snapshot.system-taken");
  await runTool("qemu-img", ["snapshot", "-c", name, paths.homeImage], { missingHint: _hint });
  // Then the nvram copy: it makes the snapshot whole.
  await copyFileAtomic(paths.nvram, _nvramCopy(paths, name));
  await Deno.remove(_marker(paths, "taking", name));
  return (await listDiskSnapshots(paths)).find((s) => s.name === name)!;
}

/** Reverts stopped project `project` to snapshot `name`. Call under the store lock. */
export async function revertDiskSnapshot(store: Store, project: string, name: string): Promise<void> {
  validateSnapshotName(name);
  const paths = await _stoppedProject(store, project);
  await _requireSnapshot(paths, name);
  await writeFileAtomic(_revertJournal(paths), `${name}\n`);
  await _applySnapshot(paths, name);
  await Deno.remove(_revertJournal(paths));
}

/** Deletes snapshot `name` of stopped project `project`. Call under the store lock. */
export async function deleteDiskSnapshot(store: Store, project: string, name: string): Promise<void> {
  validateSnapshotName(name);
  const paths = await _stoppedProject(store, project);
  await _requireSnapshot(paths, name);
  // The marker first: a crash from here on is finished by the next snapshot command.
  await writeFileAtomic(_marker(paths, "deleting", name), "");
  await Deno.remove(_nvramCopy(paths, name));
  crashPoint("snapshot.delete-marked");
  await _removeSnapshot(paths, name);
  await Deno.remove(_marker(paths, "deleting", name));
}
