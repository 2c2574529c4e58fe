import { defineCommand, projectPositional } from "../cli/spec.ts";
import { VirtdevError } from "../core/store/errors.ts";
import { manifestCandidates, resolveManifestPath } from "../core/state/manifest.ts";
import { requireProject } from "../core/projects/project_lookup.ts";
import { pathExists } from "../core/store/store.ts";

const _resources = ["data", "backups", "manifest", "system-image", "home-image", "nvram", "generation"] as const;

/** `virtdev path <project|base> [resource]`: prints where something lives. */
export const pathCommand = defineCommand("path", {
  brief: `Print the path of a project resource, or of the base ('base').`,
  description:
    `Resources: data (the directory, default), backups, manifest, system-image, home-image, nvram, generation. The name 'base' (reserved, never a project) gives the sealed base's paths.`,
  takesProject: true,
  positionals: {
    project: { ...projectPositional, description: "A project, or 'base' for the sealed base." },
    resource: { metavar: "RESOURCE", choices: _resources, optional: true },
  },
  async run({ project, resource = "data" }, { store, config, ui }) {
    if (project === "base") {
      const base = store.base;
      const paths: Partial<Record<string, string>> = {
        data: base.dir,
        "system-image": base.systemImage,
        "home-image": base.homeImage,
        nvram: base.nvram,
        generation: base.generation,
      };
      const path = paths[resource];
      if (path === undefined) {
        throw new VirtdevError(`The base has no resource '${resource}'.`, {
          exitCode: 5,
          hint: `The base has: ${Object.keys(paths).join(", ")}.`,
        });
      }
      if (!await pathExists(path)) {
        throw new VirtdevError(`${path} does not exist.`, { exitCode: 4, hint: "Seal a base first: virtdev seal" });
      }
      ui.result(path);
      return;
    }
    const paths = await requireProject(store, project);
    switch (resource) {
      case "data":
        return ui.result(paths.dir);
      case "backups":
        return ui.result(store.backups(project));
      case "system-image":
        return ui.result(paths.systemImage);
      case "home-image":
        return ui.result(paths.homeImage);
      case "nvram":
        return ui.result(paths.nvram);
      case "generation":
        return ui.result(paths.generation);
      case "manifest": {
        const manifest = await resolveManifestPath(store, config, project);
        if (manifest === undefined) {
          throw new VirtdevError(`Project ${project} has no backup manifest.`, {
            exitCode: 4,
            hint: `Write one (paths relative to /home/dev, one per line) at: ${
              manifestCandidates(store, config, project).join(" or ")
            }`,
          });
        }
        return ui.result(manifest);
      }
    }
  },
});
