/**
 * `upgrade`: move projects onto a maintained base. Audit → plan → back up
 * every included project → `maintain` → `recreate --no-backup` of each on
 * the new base, best effort, one after the other → a summary.
 *
 * @module
 */
import type { Config, Environment } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { describeGeneration, isStale, readGeneration } from "../store/generation.ts";
import type { LockTaker } from "../store/lock.ts";
import { pathExists, type Store, validateProjectName } from "../store/store.ts";
import { waitForGuest } from "../guest/guest_access.ts";
import { defaultProvisionPath, isReadableFile } from "../guest/provision.ts";
import { backupProject } from "./backup.ts";
import { loadManifest } from "./manifest.ts";
import { planRecreate, type RecreateProgress, runRecreate } from "./recreate.ts";
import { suspendedProjectsError } from "../vm/suspended_error.ts";
import { inspectVm } from "../vm/runtime_state.ts";
import { startProject, stopProject } from "../vm/vm_lifecycle.ts";
import type { MaintainResult } from "../base/maintain.ts";

/** Exit codes of `upgrade`. */
export const UpgradeExit = {
  noBase: 3,
  onlyAndExcept: 4,
  projectMissing: 5,
  outdatedStopped: 7,
  aborted: 8,
  baseGenerationMissing: 9,
  noProjects: 10,
  nothingLeft: 11,
  excludedRunning: 12,
  backupFailed: 20,
  maintainFailed: 30,
  rebuildFailed: 40,
} as const;

/** What the user asked for. */
export interface UpgradeRequest {
  readonly only?: readonly string[];
  readonly except?: readonly string[];
  readonly skipOutdated: boolean;
  readonly verbose: boolean;
}

/** A project left out, and why. */
export interface Exclusion {
  readonly project: string;
  readonly reason: string;
}

/** The checked plan. */
export interface UpgradePlan {
  readonly request: UpgradeRequest;
  readonly baseGeneration: string;
  readonly included: readonly string[];
  readonly excluded: readonly Exclusion[];
  /** Projects left out for a reason the user should see as a warning. */
  readonly warnings: readonly string[];
  /** The provision scripts the rebuilds will run. */
  readonly provisionScripts: readonly { readonly project: string; readonly path: string }[];
}

/**
 * Audits the projects and decides which are upgraded.
 *
 * @throws {VirtdevError} with an {@link UpgradeExit} code.
 */
export async function planUpgrade(
  store: Store,
  request: UpgradeRequest,
  options: { readonly config: Config },
): Promise<UpgradePlan> {
  if (request.only?.length && request.except?.length) {
    throw new VirtdevError("--only and --except cannot be used together.", { exitCode: UpgradeExit.onlyAndExcept });
  }
  for (const name of [...request.only ?? [], ...request.except ?? []]) validateProjectName(name);
  if (!await pathExists(store.base.dir)) {
    throw new VirtdevError(`There is no sealed base: ${store.base.dir} does not exist.`, {
      exitCode: UpgradeExit.noBase,
      hint: "Install and seal one first: 'virtdev install --image <cloud image>', then 'virtdev seal'.",
    });
  }
  const base = await readGeneration(store.base.generation);
  if (base.kind !== "number") {
    throw new VirtdevError(`The base generation is missing or unreadable: ${store.base.generation}.`, {
      exitCode: UpgradeExit.baseGenerationMissing,
      hint: "The base is damaged; install and seal it again.",
    });
  }
  const projects = await store.listProjects();
  if (projects.length === 0) {
    throw new VirtdevError("There are no projects to upgrade.", {
      exitCode: UpgradeExit.noProjects,
      hint: "Update the base alone with 'virtdev maintain'.",
    });
  }
  for (const name of [...request.only ?? [], ...request.except ?? []]) {
    if (!projects.includes(name)) {
      throw new VirtdevError(`No such project: ${name}.`, {
        exitCode: UpgradeExit.projectMissing,
        hint: "List projects with 'virtdev list'.",
      });
    }
  }

  // The reseal moves every project's base: a suspended one's memory would no longer fit its disks.
  const suspended: string[] = [];
  for (const name of projects) {
    if ((await inspectVm(store.project(name))).state === "suspended") suspended.push(name);
  }
  if (suspended.length) throw suspendedProjectsError(suspended, "upgrade the base");

  const excluded: Exclusion[] = [];
  const warnings: string[] = [];
  const included: string[] = [];
  const outdatedStopped: string[] = [];
  for (const name of projects) {
    if (request.only?.length && !request.only.includes(name)) {
      excluded.push({ project: name, reason: "--only" });
      continue;
    }
    if (request.except?.includes(name)) {
      excluded.push({ project: name, reason: "--except" });
      continue;
    }
    const paths = store.project(name);
    const generation = await readGeneration(paths.generation);
    if (generation.kind === "detached") {
      excluded.push({ project: name, reason: "detached" });
      continue;
    }
    try {
      await loadManifest(store, options.config, name);
    } catch (error) {
      if (!(error instanceof VirtdevError)) throw error;
      // Without a manifest there is nothing to carry over: rebuilding
      // would lose the project's data, so it is left as it is.
      excluded.push({ project: name, reason: "no usable backup manifest" });
      warnings.push(`${name} has no usable backup manifest (${error.message}); it is not upgraded.`);
      continue;
    }
    const running = (await inspectVm(paths)).state !== "stopped";
    if (!running && isStale(generation, base)) {
      if (request.skipOutdated) {
        excluded.push({ project: name, reason: "already outdated, --skip-outdated" });
        continue;
      }
      outdatedStopped.push(name);
      continue;
    }
    included.push(name);
  }
  if (outdatedStopped.length) {
    throw new VirtdevError(
      `Projects already on an older base cannot be backed up (they cannot start): ${outdatedStopped.join(", ")}.`,
      {
        exitCode: UpgradeExit.outdatedStopped,
        hint: [
          "Leave them out with --skip-outdated (or --except), or rebuild each with 'virtdev recreate --no-backup <project>'.",
        ],
      },
    );
  }
  const runningElsewhere: string[] = [];
  for (const { project } of excluded) {
    if ((await inspectVm(store.project(project))).state !== "stopped") runningElsewhere.push(project);
  }
  if (runningElsewhere.length) {
    throw new VirtdevError(`Projects left out of the upgrade are running: ${runningElsewhere.join(", ")}.`, {
      exitCode: UpgradeExit.excludedRunning,
      hint: `The base cannot be maintained while they run. Stop them first: ${
        runningElsewhere.map((p) => `virtdev stop ${p}`).join("; ")
      }`,
    });
  }
  if (included.length === 0) {
    throw new VirtdevError("No project is left to upgrade after filtering.", {
      exitCode: UpgradeExit.nothingLeft,
      hint: "Update the base alone with 'virtdev maintain'.",
    });
  }
  const provisionScripts: { project: string; path: string }[] = [];
  for (const project of included) {
    const path = defaultProvisionPath(options.config, project);
    if (await isReadableFile(path)) provisionScripts.push({ project, path });
  }
  return { request, baseGeneration: base.value, included, excluded, warnings, provisionScripts };
}

/** The plan as printed before the confirmation. */
export function describeUpgradePlan(plan: UpgradePlan): string[] {
  const lines = [`Projects to upgrade: ${plan.included.length}`, ...plan.included.map((p) => `  ${p}`)];
  if (plan.excluded.length) {
    lines.push(`Not upgraded: ${plan.excluded.length}`);
    for (const { project, reason } of plan.excluded) lines.push(`  ${project.padEnd(30)} (${reason})`);
  }
  lines.push("Provision scripts found:");
  if (plan.provisionScripts.length === 0) lines.push("  (none)");
  for (const { project, path } of plan.provisionScripts) lines.push(`  ${project}: ${path}`);
  lines.push("This backs up each project, maintains the base, and rebuilds each project on it.");
  return lines;
}

/** One project's outcome. */
export interface UpgradeRow {
  readonly project: string;
  readonly before: string;
  readonly after: string;
  readonly snapshot?: string;
  /** `upgraded`, or the step that failed. */
  readonly result: string;
  readonly exitCode?: number;
  readonly resume?: string;
}

/** What a finished upgrade did. */
export interface UpgradeSummary {
  readonly from: string;
  readonly to: string;
  readonly rows: readonly UpgradeRow[];
}

/** Progress of the upgrade. */
export interface UpgradeProgress extends RecreateProgress {
  /** A phase begins. */
  phase(index: number, line: string): void;
}

/**
 * Runs the plan. A failed backup or maintenance ends it (the base is then
 * unchanged); a failed rebuild is recorded and the next one runs.
 */
export async function runUpgrade(
  store: Store,
  plan: UpgradePlan,
  options: {
    readonly config: Config;
    readonly env: Environment;
    readonly progress: UpgradeProgress;
    /** The store lock, taken for each start, stop and rebuild step. */
    readonly lock: LockTaker;
    /** Runs the maintenance session (unattended when the user said -y). */
    readonly maintain: () => Promise<MaintainResult>;
  },
): Promise<UpgradeSummary> {
  const { config, env, progress } = options;
  const { verbose } = plan.request;
  const snapshots = new Map<string, string>();
  const before = new Map<string, string>();
  const wasRunning = new Set<string>();
  for (const project of plan.included) {
    before.set(project, describeGeneration(await readGeneration(store.project(project).generation)));
  }
  const restartHint = (): string[] => plan.included.map((p) => `Restart with: virtdev start ${p}`);

  progress.phase(1, "Backing up");
  for (const project of plan.included) {
    const paths = store.project(project);
    let startedHere = false;
    try {
      if ((await inspectVm(paths)).state !== "stopped") wasRunning.add(project);
      else {
        using _lock = await options.lock(`upgrade (start ${project})`, { waitSeconds: 60 });
        await startProject(store, project, { config, env, reporter: progress });
        startedHere = true;
      }
      await waitForGuest(store, project, { config });
      const result = await backupProject(store, project, {
        config,
        reporter: progress,
        verbose,
        onOutput: progress.output,
      });
      snapshots.set(project, result.id);
      progress.info(`${project}: snapshot ${result.id} (${result.stats.entries} entries).`);
      using _lock = await options.lock(`upgrade (stop ${project})`, { waitSeconds: 60 });
      await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: progress });
    } catch (error) {
      if (startedHere && (await inspectVm(paths)).state !== "stopped") {
        await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: progress }).catch(() => {});
      }
      throw new VirtdevError(`Backing up ${project} failed: ${error instanceof Error ? error.message : error}`, {
        exitCode: UpgradeExit.backupFailed,
        hint: ["The base is unchanged. Backups taken so far are kept.", ...restartHint()],
        cause: error,
      });
    }
  }

  progress.phase(2, "Maintaining the base");
  let maintained: MaintainResult;
  try {
    maintained = await options.maintain();
  } catch (error) {
    const hints = error instanceof VirtdevError ? [...error.hints] : [];
    throw new VirtdevError(`Maintaining the base failed: ${error instanceof Error ? error.message : error}`, {
      exitCode: UpgradeExit.maintainFailed,
      hint: [...hints, "The projects are backed up and stopped.", ...restartHint()],
      cause: error,
    });
  }

  progress.phase(3, "Rebuilding");
  const rows: UpgradeRow[] = [];
  for (const project of plan.included) {
    const snapshot = snapshots.get(project);
    const row = { project, before: before.get(project) ?? "-", snapshot };
    try {
      const recreate = await planRecreate(store, {
        project,
        noBackup: true,
        noRestore: false,
        noProvision: false,
        snapshot,
        verbose,
      }, { config });
      await runRecreate(store, recreate, { config, env, progress, lock: options.lock });
      const after = describeGeneration(await readGeneration(store.project(project).generation));
      // A project that was stopped before the upgrade is left stopped.
      if (!wasRunning.has(project) && (await inspectVm(store.project(project))).state !== "stopped") {
        using _lock = await options.lock(`upgrade (stop ${project})`, { waitSeconds: 60 });
        await stopProject(store, project, { stopTimeout: config.stopTimeout, reporter: progress });
      }
      rows.push({ ...row, after, result: "upgraded" });
    } catch (error) {
      const exitCode = error instanceof VirtdevError ? error.exitCode : 1;
      // recreate names the command that resumes at the step that failed.
      const resume = (error instanceof VirtdevError ? error.hints : []).find((h) => h.startsWith("Resume with: "))
        ?.slice("Resume with: ".length) ??
        `virtdev recreate --no-backup${snapshot ? ` --snapshot ${snapshot}` : ""} ${project}`;
      const after = describeGeneration(await readGeneration(store.project(project).generation));
      progress.warn(`${project}: ${error instanceof Error ? error.message : error}`);
      rows.push({ ...row, after, result: `failed (exit ${exitCode})`, exitCode, resume });
    }
  }
  return { from: maintained.from, to: maintained.to, rows };
}
