import { basename } from "../core/store/path.ts";
import { defineCommand, flagOption, projectPositional } from "../cli/spec.ts";
import { allocatedBytes } from "../core/store/disk_usage.ts";
import { readGeneration } from "../core/store/generation.ts";
import { imageInfo } from "../core/vm/images.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { listKeptGenerations } from "../core/base/kept_generations.ts";
import { formatSize } from "../core/store/size.ts";
import { pathExists } from "../core/store/store.ts";

/** `virtdev disk [--json] <project>`: how much disk a project uses. */
export const diskCommand = defineCommand("disk", {
  brief: `Show a project's disk usage: allocated and virtual size of each disk.`,
  takesProject: true,
  options: {
    json: flagOption(["--json"], `Print JSON instead of text.`),
  },
  positionals: {
    project: projectPositional,
  },
  async run({ project, json }, { store, ui }) {
    const paths = await requireProject(store, project);
    const detached = (await readGeneration(paths.generation)).kind === "detached";
    const disks = [];
    for (const [label, path] of [["system", paths.systemImage], ["home", paths.homeImage]] as const) {
      if (!await pathExists(path)) {
        disks.push({ label, path, exists: false, allocated: 0, virtualSize: null, backing: null });
        continue;
      }
      const info = await imageInfo(path);
      disks.push({
        label,
        path,
        exists: true,
        allocated: await allocatedBytes(path),
        virtualSize: info.virtualSize,
        backing: info.backingFile ?? null,
      });
    }
    const total = await allocatedBytes(paths.dir);
    // The cost of being suspended: the saved memory, beside the deltas.
    const suspended = await pathExists(paths.suspended) ? await allocatedBytes(paths.suspended) : null;
    const template = await pathExists(paths.template) ? await allocatedBytes(paths.template) : null;
    const kept = (await listKeptGenerations(store)).find((generation) => generation.projects.includes(project));
    const keptBase = kept
      ? { generation: kept.generation, dir: kept.dir, bytes: kept.bytes, projects: kept.projects }
      : null;
    if (json) {
      ui.result(
        JSON.stringify({ project, mode: detached ? "detached" : "delta", disks, total, keptBase, suspended, template }),
      );
      return;
    }
    ui.info(project, "bold");
    ui.info(`  mode: ${detached ? "detached (standalone)" : "delta"}`);
    for (const disk of disks) {
      if (!disk.exists) {
        ui.warn(`${disk.label} disk not found: ${disk.path}`);
        continue;
      }
      const backing = disk.backing ? ` (backing: ${basename(disk.backing)})` : "";
      ui.result(
        `  ${disk.label.padEnd(8)} ${formatSize(disk.allocated).padStart(10)} / ${
          formatSize(disk.virtualSize ?? 0).padEnd(10)
        } ${basename(disk.path)}${backing}`,
      );
    }
    if (suspended !== null) ui.result(`  suspended ${formatSize(suspended).padStart(7)}   saved memory (suspended/)`);
    if (template !== null) {
      ui.result(`  template  ${formatSize(template).padStart(7)}   the warm image of disposable runs (template/)`);
    }
    ui.info(`  total: ${formatSize(total)}`);
    if (keptBase) {
      ui.info(
        `  base: kept generation ${keptBase.generation}, ${formatSize(keptBase.bytes)} (${keptBase.dir}; shared by ${
          keptBase.projects.join(", ")
        })`,
      );
    }
  },
});
