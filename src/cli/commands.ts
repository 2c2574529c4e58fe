/**
 * Every command virtdev offers, in help order, each loaded only when it is
 * run: a command pays for its own modules, not for the other commands'.
 *
 * @module
 */
import type { Command } from "./spec.ts";

/** The command names, in help order. */
export const commandNames: readonly string[] = [
  "doctor",
  "key",
  "iso",
  "install",
  "seal",
  "maintain",
  "create",
  "start",
  "wait",
  "ssh",
  "ssh-config",
  "run",
  "transfer",
  "stop",
  "suspend",
  "net",
  "allow",
  "forward",
  "set",
  "resize",
  "snapshot",
  "backup",
  "restore",
  "recreate",
  "upgrade",
  "console",
  "monitor",
  "log",
  "destroy",
  "move",
  "clone",
  "detach",
  "nuke",
  "list",
  "status",
  "port",
  "pid",
  "path",
  "disk",
  "generation",
  "stale",
  "gc",
];

// Literal specifiers, so that `deno compile` and the bundler see every module.
const _loaders: Readonly<Record<string, () => Promise<Command>>> = {
  doctor: async () => (await import("../commands/doctor.ts")).doctorCommand,
  key: async () => (await import("../commands/key.ts")).keyCommand,
  iso: async () => (await import("../commands/iso.ts")).isoCommand,
  install: async () => (await import("../commands/install.ts")).installCommand,
  seal: async () => (await import("../commands/seal.ts")).sealCommand,
  maintain: async () => (await import("../commands/maintain.ts")).maintainCommand,
  create: async () => (await import("../commands/create.ts")).createCommand,
  start: async () => (await import("../commands/start.ts")).startCommand,
  wait: async () => (await import("../commands/wait.ts")).waitCommand,
  ssh: async () => (await import("../commands/ssh.ts")).sshCommand,
  "ssh-config": async () => (await import("../commands/ssh_config.ts")).sshConfigCommand,
  run: async () => (await import("../commands/run.ts")).runCommand,
  transfer: async () => (await import("../commands/transfer.ts")).transferCommand,
  stop: async () => (await import("../commands/stop.ts")).stopCommand,
  suspend: async () => (await import("../commands/suspend.ts")).suspendCommand,
  net: async () => (await import("../commands/net.ts")).netCommand,
  allow: async () => (await import("../commands/allow.ts")).allowCommand,
  forward: async () => (await import("../commands/forward.ts")).forwardCommand,
  set: async () => (await import("../commands/set.ts")).setCommand,
  resize: async () => (await import("../commands/resize.ts")).resizeCommand,
  snapshot: async () => (await import("../commands/snapshot.ts")).snapshotCommand,
  backup: async () => (await import("../commands/backup.ts")).backupCommand,
  restore: async () => (await import("../commands/restore.ts")).restoreCommand,
  recreate: async () => (await import("../commands/recreate.ts")).recreateCommand,
  upgrade: async () => (await import("../commands/upgrade.ts")).upgradeCommand,
  console: async () => (await import("../commands/console.ts")).consoleCommand,
  monitor: async () => (await import("../commands/monitor.ts")).monitorCommand,
  log: async () => (await import("../commands/log.ts")).logCommand,
  destroy: async () => (await import("../commands/destroy.ts")).destroyCommand,
  move: async () => (await import("../commands/move.ts")).moveCommand,
  clone: async () => (await import("../commands/clone.ts")).cloneCommand,
  detach: async () => (await import("../commands/detach.ts")).detachCommand,
  nuke: async () => (await import("../commands/nuke.ts")).nukeCommand,
  list: async () => (await import("../commands/list.ts")).listCommand,
  status: async () => (await import("../commands/status.ts")).statusCommand,
  port: async () => (await import("../commands/port.ts")).portCommand,
  pid: async () => (await import("../commands/pid.ts")).pidCommand,
  path: async () => (await import("../commands/path.ts")).pathCommand,
  disk: async () => (await import("../commands/disk.ts")).diskCommand,
  generation: async () => (await import("../commands/generation.ts")).generationCommand,
  stale: async () => (await import("../commands/stale.ts")).staleCommand,
  gc: async () => (await import("../commands/gc.ts")).gcCommand,
};

/** Whether `name` is a command. */
export function isCommandName(name: string): boolean {
  return Object.hasOwn(_loaders, name);
}

/** Loads command `name`; check it with {@link isCommandName} first. */
export async function loadCommand(name: string): Promise<Command> {
  const load = _loaders[name];
  if (load === undefined) throw new RangeError(`No command ${name}.`);
  return await load();
}

/** Loads every command, in help order. */
export async function loadAllCommands(): Promise<Command[]> {
  return await Promise.all(commandNames.map(loadCommand));
}
