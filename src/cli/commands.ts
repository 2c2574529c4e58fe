/**
 * Every command virtdev offers, in help order.
 *
 * @module
 */
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
import { staleCommand } from "../commands/stale.ts";
import { statusCommand } from "../commands/status.ts";
import type { CommandSpec } from "./command.ts";

/** The registered commands. */
export const commands: readonly CommandSpec[] = [
  keyCommand,
  sealCommand,
  createCommand,
  destroyCommand,
  detachCommand,
  nukeCommand,
  listCommand,
  statusCommand,
  pathCommand,
  diskCommand,
  generationCommand,
  staleCommand,
];
