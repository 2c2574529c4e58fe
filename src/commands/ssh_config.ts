import { defineCommand, flagOption } from "../cli/spec.ts";
import { UsageError } from "../core/store/errors.ts";
import {
  includeLine,
  installInclude,
  renderSshConfig,
  sshConfigPath,
  sshHostSuffix,
  uninstallInclude,
  writeSshConfig,
} from "../core/projects/ssh_config.ts";

/** `virtdev ssh-config [--install | --uninstall | --print]`. */
export const sshConfigCommand = defineCommand("ssh-config", {
  brief:
    `Write ~/.config/virtdev/ssh_config (a 'Host <project>${sshHostSuffix}' per project); --install includes it from ~/.ssh/config.`,
  description:
    `Then 'ssh web${sshHostSuffix}', scp, rsync and editors such as VS Code Remote-SSH reach a project directly, with its pinned host key (StrictHostKeyChecking yes) and your virtdev key. Once written, create, start, clone, move and destroy keep it current. --install adds one Include line at the top of ~/.ssh/config and changes nothing else there; --uninstall removes that line. A project gets its entry once it has started (its port is chosen then).`,
  options: {
    install: flagOption(["--install"], `Also add the Include line to ~/.ssh/config.`),
    uninstall: flagOption(["--uninstall"], `Remove the Include line from ~/.ssh/config.`),
    print: flagOption(["--print"], `Print the configuration instead of writing it.`),
  },
  async run({ install, uninstall, print }, { store, config, env, ui }) {
    if ([install, uninstall, print].filter(Boolean).length > 1) {
      throw new UsageError("Use one of --install, --uninstall and --print.");
    }
    const home = env.HOME ?? "";
    if (print) {
      ui.result((await renderSshConfig(store, { identity: config.sshKey })).trimEnd());
      return;
    }
    if (uninstall) {
      const removed = await uninstallInclude(home, config.configDir);
      if (removed) ui.success(`Removed '${includeLine(config.configDir)}' from ~/.ssh/config.`);
      else ui.info("~/.ssh/config does not include virtdev's configuration; nothing to do.");
      return;
    }
    const path = await writeSshConfig(store, { configDir: config.configDir, identity: config.sshKey });
    ui.success(`Wrote ${path}.`);
    if (install) {
      const added = await installInclude(home, config.configDir);
      ui.info(
        added ? `Added '${includeLine(config.configDir)}' to ~/.ssh/config.` : "~/.ssh/config includes it already.",
      );
      ui.info(`Try: ssh <project>${sshHostSuffix}`);
    } else if (
      !(await Deno.readTextFile(`${home}/.ssh/config`).catch(() => "")).includes(sshConfigPath(config.configDir))
    ) {
      ui.info("Use it with 'ssh -F' or include it: virtdev ssh-config --install");
    }
    ui.result(path);
  },
});
