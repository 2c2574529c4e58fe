import { defineCommand, projectPositional } from "../cli/spec.ts";
import { requireRunningVm } from "../core/guest/guest_access.ts";

/** `virtdev port <project>`: the running VM's SSH port. */
export const portCommand = defineCommand("port", {
  brief: `Print a running project VM's SSH port on 127.0.0.1.`,
  takesProject: true,
  positionals: {
    project: projectPositional,
  },
  async run({ project }, { store, ui }) {
    ui.result(String((await requireRunningVm(store, project, 5)).record.port));
  },
});
