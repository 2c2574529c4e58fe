import { defineCommand, flagOption, projectPositional, valueOption } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { backupProject } from "../core/state/backup.ts";
import { join } from "../core/store/path.ts";
import { allocatedBytes } from "../core/store/disk_usage.ts";
import { describeGeneration, readGeneration } from "../core/store/generation.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { formatSize } from "../core/store/size.ts";
import { latestSnapshot, listSnapshots, snapshotDir, snapshotTime } from "../core/state/snapshots.ts";

function _age(id: string, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - snapshotTime(id).getTime()) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

/** `virtdev backup [-v] [--keep N] <project>`, `--list [--json]`, `--latest`. */
export const backupCommand = defineCommand("backup", {
  brief: `Back up the paths in a project's manifest from its running VM; prints the snapshot id.`,
  description:
    `Snapshots go to backups/<project>/<YYYY-MM-DD>/<HH-MM-SS> (UTC). Files unchanged since the previous snapshot are hard links to it, so an unchanged tree costs almost no disk. Permissions, symlinks, hard links and times are kept; owners are not (the files are yours, whatever uid the guest gave them). --list and --latest work while the VM is stopped.`,
  takesProject: true,
  options: {
    verbose: flagOption(["-v", "--verbose"], `Show each file rsync copies.`),
    list: flagOption(["-l", "--list"], `List the snapshots.`),
    json: flagOption(["--json"], `With --list: print JSON.`),
    latest: flagOption(["--latest"], `Print the newest snapshot id (or nothing).`),
    keep: valueOption(["--keep"], "N", `After the backup, keep only the newest N snapshots.`, {
      type: "integer",
      min: 1,
    }),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, verbose, list, json, latest, keep }, context) {
    const { store, config, ui } = context;
    if (list || latest) await requireProject(store, project);
    // Briefly: a move cut short is finished (the project may be its target) before its files are read.
    // The copy itself runs under the project's own backup lock, so other projects are not held up.
    else await withLock(context, `backup ${project}`, () => requireProject(store, project), { waitSeconds: 60 });
    if (latest) {
      const id = await latestSnapshot(store, project);
      if (id !== undefined) ui.result(id);
      return;
    }
    if (list) {
      const now = new Date();
      const rows = [];
      for (const id of await listSnapshots(store, project)) {
        const dir = snapshotDir(store, project, id);
        rows.push({
          id,
          age: _age(id, now),
          bytes: await allocatedBytes(dir),
          generation: describeGeneration(await readGeneration(join(dir, "generation"))),
        });
      }
      if (json) {
        ui.result(JSON.stringify(rows.map((row) => ({ ...row, path: snapshotDir(store, project, row.id) }))));
        return;
      }
      if (rows.length === 0) {
        ui.info("No snapshots.");
        return;
      }
      ui.result(`${"SNAPSHOT".padEnd(19)}  ${"AGE".padEnd(9)}  ${"SIZE".padStart(9)}  GENERATION`);
      for (const row of rows) {
        ui.result(`${row.id}  ${row.age.padEnd(9)}  ${formatSize(row.bytes).padStart(9)}  ${row.generation}`);
      }
      ui.info("SIZE counts blocks shared with other snapshots too.");
      return;
    }
    const output = ui.guestStream(undefined, { keepCarriageReturn: ui.io.stderrIsTerminal });
    const result = await backupProject(store, project, {
      config,
      reporter: ui,
      verbose,
      progress: ui.io.stderrIsTerminal && !verbose,
      keep,
      onOutput: output.write,
    });
    output.end();
    ui.success(
      `Backed up ${result.stats.entries} entries (${result.stats.transferred} files copied, the rest linked to the previous snapshot).`,
    );
    for (const id of result.pruned) ui.info(`Pruned ${id} (--keep ${keep}).`);
    ui.result(result.id);
  },
});
