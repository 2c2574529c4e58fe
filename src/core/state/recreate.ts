/**
 * `recreate`: rebuild a project on the current base without losing what
 * its manifest names. The chain is backup → stop → destroy → create →
 * start → wait → provision → restore; each step has its own exit code, and
 * a failure says which command resumes from it.
 *
 * @module
 */
import { shellWord } from "../store/shell_quote.ts";
import { backupProject } from "./backup.ts";
import type { Config, Environment } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { waitForGuest } from "../guest/guest_access.ts";
import type { LockTaker } from "../store/lock.ts";
import { loadManifest } from "./manifest.ts";
import { createProject, destroyProject, requireProject } from "../projects/project.ts";
import { restoreSettings, saveSettings } from "../projects/setting_files.ts";
import { defaultProvisionPath, isReadableFile, runProvision } from "../guest/provision.ts";
import type { Reporter } from "../store/reporter.ts";
import { restoreProject } from "./restore.ts";
import { suspendedError } from "../vm/suspended_error.ts";
import { inspectVm } from "../vm/runtime_state.ts";
import { latestSnapshot, listSnapshots, validateSnapshotId } from "./snapshots.ts";
import { pathExists, type Store, validateProjectName } from "../store/store.ts";
import { startProject, stopProject } from "../vm/vm_lifecycle.ts";

/** The steps, in order. */
export const recreateSteps = ["backup", "stop", "destroy", "create", "start", "wait", "provision", "restore"] as const;

/** One step's name. */
export type RecreateStep = typeof recreateSteps[number];

/** Exit codes of `recreate` before the chain runs. */
export const RecreateExit = { notRunning: 4, manifest: 5, provisionPath: 6, aborted: 7, snapshotMissing: 8 } as const;

/** The exit code of a failed step: 20 for backup up to 27 for restore. */
export function stepExitCode(step: RecreateStep): number {
  return 20 + recreateSteps.indexOf(step);
}

/** What the user asked for. */
export interface RecreateRequest {
  readonly project: string;
  readonly noBackup: boolean;
  readonly noRestore: boolean;
  readonly noProvision: boolean;
  readonly provision?: string;
  readonly snapshot?: string;
  readonly from?: RecreateStep;
  readonly verbose: boolean;
}

/** One line of the plan. */
export interface PlannedStep {
  readonly step: RecreateStep;
  /** Why it is skipped, or `undefined` when it runs. */
  readonly skipped?: string;
  /** A detail shown beside it (the script, the snapshot). */
  readonly detail?: string;
}

/** The checked plan. */
export interface RecreatePlan {
  readonly request: RecreateRequest;
  readonly steps: readonly PlannedStep[];
  readonly provisionPath?: string;
  /**
   * The snapshot restore uses: the one asked for (a backup, if it runs, is
   * then a safety copy), else the newest when no backup runs; when a backup
   * runs and none was asked for, the one it makes.
   */
  readonly snapshot?: string;
}

/**
 * Checks everything that can be checked before anything runs, and decides
 * which steps run.
 *
 * @throws {VirtdevError} 3 no project, 4 not running (for the backup), 5 no
 *   or a bad manifest, 6 an unreadable provision script, 8 no such
 *   snapshot, 79 a bad snapshot id.
 */
export async function planRecreate(
  store: Store,
  request: RecreateRequest,
  options: { readonly config: Config },
): Promise<RecreatePlan> {
  const { project } = request;
  validateProjectName(project);
  if (request.snapshot !== undefined) {
    validateSnapshotId(request.snapshot);
    // Checked now, not after the disks are gone.
    if (!(await listSnapshots(store, project)).includes(request.snapshot)) {
      throw new VirtdevError(`No snapshot ${request.snapshot} of ${project}.`, {
        exitCode: RecreateExit.snapshotMissing,
        hint: `List them with 'virtdev backup --list ${project}'. Nothing was changed.`,
      });
    }
  }
  const fromIndex = request.from === undefined ? 0 : recreateSteps.indexOf(request.from);
  const before = (step: RecreateStep): boolean => recreateSteps.indexOf(step) < fromIndex;
  // Resuming after destroy may find no project: that is what create makes.
  if (fromIndex <= recreateSteps.indexOf("destroy")) await requireProject(store, project);

  const state = await pathExists(store.project(project).dir)
    ? (await inspectVm(store.project(project))).state
    : "stopped";
  if (state === "suspended") throw suspendedError(project, "recreate it", { resumeFirst: true });
  const running = state !== "stopped";
  const runsBackup = !request.noBackup && !before("backup");
  if (runsBackup) {
    if (!running) {
      throw new VirtdevError(`Project ${project} is not running, so it cannot be backed up first.`, {
        exitCode: RecreateExit.notRunning,
        hint: [
          `Start it ('virtdev start ${project} && virtdev wait ${project}'), or skip the backup with --no-backup.`,
        ],
      });
    }
    try {
      await loadManifest(store, options.config, project);
    } catch (error) {
      if (!(error instanceof VirtdevError)) throw error;
      throw new VirtdevError(error.message, {
        exitCode: RecreateExit.manifest,
        hint: [...error.hints, "Or skip the backup with --no-backup."],
      });
    }
  }

  let provisionPath: string | undefined;
  if (!request.noProvision) {
    if (request.provision !== undefined) {
      if (!await isReadableFile(request.provision)) {
        throw new VirtdevError(`The provision script is not a readable file: ${request.provision}.`, {
          exitCode: RecreateExit.provisionPath,
        });
      }
      provisionPath = request.provision;
    } else {
      const fallback = defaultProvisionPath(options.config, project);
      if (await isReadableFile(fallback)) provisionPath = fallback;
    }
  }

  const snapshot = request.snapshot ?? (runsBackup ? undefined : await latestSnapshot(store, project));
  const resumeReason = request.from === undefined ? undefined : `resuming from ${request.from}`;
  const steps: PlannedStep[] = recreateSteps.map((step): PlannedStep => {
    if (before(step)) return { step, skipped: resumeReason };
    switch (step) {
      case "backup":
        return request.noBackup ? { step, skipped: "--no-backup" } : { step };
      case "stop":
        return running ? { step } : { step, skipped: "VM already stopped" };
      case "provision":
        if (request.noProvision) return { step, skipped: "--no-provision" };
        return provisionPath ? { step, detail: provisionPath } : { step, skipped: "no script found" };
      case "restore":
        if (request.noRestore) return { step, skipped: "--no-restore" };
        if (request.snapshot !== undefined) {
          return {
            step,
            detail: runsBackup ? `${request.snapshot} (step 1's snapshot is kept too)` : request.snapshot,
          };
        }
        if (runsBackup) return { step, detail: "(the snapshot from step 1)" };
        return snapshot ? { step, detail: snapshot } : { step, skipped: "no prior snapshots" };
      default:
        return { step };
    }
  });
  return { request, steps, provisionPath, snapshot };
}

/** The plan as printed before the confirmation. */
export function describePlan(plan: RecreatePlan): string[] {
  const lines = [`Plan for recreate of ${plan.request.project}:`];
  plan.steps.forEach((planned, index) => {
    if (planned.skipped) lines.push(`  -- ${planned.step.padEnd(10)} (skipped: ${planned.skipped})`);
    else lines.push(`  ${index + 1}. ${planned.step.padEnd(10)}${planned.detail ? ` ${planned.detail}` : ""}`);
  });
  lines.push("This is irreversible: the project's disks are replaced.");
  return lines;
}

/** The command that resumes `plan` at `step`, given the snapshot in play. */
export function resumeCommand(plan: RecreatePlan, step: RecreateStep, snapshot: string | undefined): string {
  const { request } = plan;
  const words = ["virtdev", "recreate", "--from", step];
  if (snapshot !== undefined && !request.noRestore) words.push("--snapshot", snapshot);
  if (request.noRestore) words.push("--no-restore");
  if (request.noProvision) words.push("--no-provision");
  else if (request.provision !== undefined) words.push("--provision", shellWord(request.provision));
  if (request.verbose) words.push("-v");
  words.push("-y", request.project);
  return words.join(" ");
}

/** Hooks for showing the chain's progress. */
export interface RecreateProgress extends Reporter {
  /** A step begins. */
  banner(index: number, total: number, step: RecreateStep, detail?: string): void;
  /** Output of rsync or the provision script. */
  output(text: string): void;
}

/** What a finished recreate did. */
export interface RecreateResult {
  readonly snapshot?: string;
  readonly restored: boolean;
}

/**
 * Runs the plan. A failing step throws with its exit code (20–27), its
 * cause, and the command that resumes from it in the hints.
 */
export async function runRecreate(
  store: Store,
  plan: RecreatePlan,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly progress: RecreateProgress;
    /** The store lock, taken for each step that changes the project. */
    readonly lock: LockTaker;
  },
): Promise<RecreateResult> {
  const { project, verbose } = plan.request;
  const { config, progress } = options;
  // What restore uses: what was asked for, else what the backup makes.
  let snapshot = plan.snapshot;
  let newest: string | undefined;
  const active = plan.steps.filter((planned) => !planned.skipped);
  let restored = false;
  for (const [index, planned] of active.entries()) {
    const { step } = planned;
    progress.banner(index + 1, active.length, step, step === "provision" ? planned.detail : undefined);
    try {
      switch (step) {
        case "backup": {
          const result = await backupProject(store, project, {
            config,
            reporter: progress,
            verbose,
            onOutput: progress.output,
          });
          newest = result.id;
          snapshot ??= result.id;
          progress.info(`Snapshot ${result.id}: ${result.stats.entries} entries.`);
          break;
        }
        case "stop": {
          using _lock = await options.lock(`recreate ${project} (stop)`, { waitSeconds: 60 });
          if ((await inspectVm(store.project(project))).state !== "stopped") {
            await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: progress });
          }
          break;
        }
        case "destroy": {
          using _lock = await options.lock(`recreate ${project} (destroy)`, { waitSeconds: 60 });
          if (await pathExists(store.project(project).dir)) {
            if ((await inspectVm(store.project(project))).state !== "stopped") {
              throw new VirtdevError(`Project ${project} is running.`, { exitCode: stepExitCode(step) });
            }
            // Its zone, allowlist, size, forwards, manifest and port outlive it.
            await saveSettings(store, project);
            await destroyProject(store, project);
          }
          break;
        }
        case "create": {
          using _lock = await options.lock(`recreate ${project} (create)`, { waitSeconds: 60 });
          if (!await pathExists(store.project(project).dir)) {
            await createProject(store, project, { reporter: progress });
          }
          const kept = await restoreSettings(store, project);
          if (kept.length > 0) progress.info(`Kept: ${kept.join(", ")}.`);
          break;
        }
        case "start": {
          using _lock = await options.lock(`recreate ${project} (start)`, { waitSeconds: 60 });
          if ((await inspectVm(store.project(project))).state === "stopped") {
            const started = await startProject(store, project, { config, env: options.env, reporter: progress });
            progress.info(`Started on port ${started.port}.`);
          }
          break;
        }
        case "wait":
          await waitForGuest(store, project, { config });
          break;
        case "provision":
          await runProvision(store, project, plan.provisionPath!, {
            config,
            failureCode: stepExitCode(step),
            onOutput: progress.output,
          });
          break;
        case "restore": {
          const result = await restoreProject(store, project, {
            config,
            reporter: progress,
            snapshot,
            verbose,
            onOutput: progress.output,
          });
          restored = true;
          progress.info(`Restored ${result.stats.entries} entries from ${result.id}.`);
          break;
        }
      }
    } catch (error) {
      // A wait that failed usually means the VM is gone: resuming starts it again.
      const resumeAt: RecreateStep = step === "wait" ? "start" : step;
      const cause = error instanceof Error ? error.message : String(error);
      const hints = error instanceof VirtdevError ? [...error.hints] : [];
      const safe = newest ?? snapshot;
      const keep = safe ? [`Your data is safe in snapshot ${safe} (${store.backups(project)}).`] : [];
      throw new VirtdevError(`Step ${step} failed: ${cause}`, {
        exitCode: stepExitCode(step),
        hint: [...hints, ...keep, `Resume with: ${resumeCommand(plan, resumeAt, snapshot)}`],
        cause: error,
      });
    }
  }
  return { snapshot, restored };
}
