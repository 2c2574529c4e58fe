/**
 * Every command virtdev offers, in help order.
 *
 * @module
 */
import { installCommand } from "../commands/install.ts";
import { isoCommand } from "../commands/iso.ts";
import { startCommand } from "../commands/start.ts";
import { stopCommand } from "../commands/stop.ts";
import { waitCommand } from "../commands/wait.ts";
import { sshCommand } from "../commands/ssh.ts";
import { consoleCommand } from "../commands/console.ts";
import { monitorCommand } from "../commands/monitor.ts";
import { logCommand } from "../commands/log.ts";
import { transferCommand } from "../commands/transfer.ts";
import { portCommand } from "../commands/port.ts";
import { pidCommand } from "../commands/pid.ts";
import { backupCommand } from "../commands/backup.ts";
import { restoreCommand } from "../commands/restore.ts";
import { recreateCommand } from "../commands/recreate.ts";
import { createCommand } from "../commands/create.ts";
import { destroyCommand } from "../commands/destroy.ts";
import { detachCommand } from "../commands/detach.ts";
import { diskCommand } from "../commands/disk.ts";
import { generationCommand } from "../commands/generation.ts";
import { keyCommand } from "../commands/key.ts";
import { listCommand } from "../commands/list.ts";
import { nukeCommand } from "../commands/nuke.ts";
import { pathCommand } from "../commands/path.ts";
import { sealCommand } from "../commands/seal.ts";
import { maintainCommand } from "../commands/maintain.ts";
import { upgradeCommand } from "../commands/upgrade.ts";
import { staleCommand } from "../commands/stale.ts";
import { statusCommand } from "../commands/status.ts";
import { netCommand } from "../commands/net.ts";
import { forwardCommand } from "../commands/forward.ts";
import { doctorCommand } from "../commands/doctor.ts";
import type { CommandSpec } from "./command.ts";

/** The registered commands. */
export const commands: readonly CommandSpec[] = [
  doctorCommand,
  keyCommand,
  isoCommand,
  installCommand,
  sealCommand,
  maintainCommand,
  createCommand,
  startCommand,
  waitCommand,
  sshCommand,
  transferCommand,
  stopCommand,
  netCommand,
  forwardCommand,
  backupCommand,
  restoreCommand,
  recreateCommand,
  upgradeCommand,
  consoleCommand,
  monitorCommand,
  logCommand,
  destroyCommand,
  detachCommand,
  nukeCommand,
  listCommand,
  statusCommand,
  portCommand,
  pidCommand,
  pathCommand,
  diskCommand,
  generationCommand,
  staleCommand,
];
