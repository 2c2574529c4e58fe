/**
 * The one error hierarchy of virtdev. Every failure a user can meet is a
 * {@link VirtdevError} carrying the exit code it ends the process with, and
 * optionally a hint that says what to do next.
 *
 * @module
 */

/** Exit codes shared by every command. Command-specific codes live beside the commands' core logic. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  invalidName: 2,
  usage: 64,
  invalidConfig: 65,
  toolMissing: 69,
  toolFailed: 70,
  /** A removal could not take everything (another user's entry, a read-only file system); the message names it. */
  cleanupFailed: 73,
  damagedJournal: 74,
  lockBusy: 75,
  /** The project is suspended: the command would change disks its saved memory belongs to. */
  suspended: 76,
  keyMissing: 77,
  keyPermissions: 78,
  invalidSnapshot: 79,
} as const;

/** Options for {@link VirtdevError}. */
export interface VirtdevErrorOptions {
  /** The process exit code this error maps to. */
  readonly exitCode: number;
  /** One or more lines telling the user what to do next. */
  readonly hint?: string | readonly string[];
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/** A failure with a documented exit code and an optional hint. */
export class VirtdevError extends Error {
  /** The exit code the top-level handler ends the process with. */
  readonly exitCode: number;
  /** Lines printed after the message, each prefixed with `hint:`. */
  readonly hints: readonly string[];

  constructor(message: string, options: VirtdevErrorOptions) {
    super(message, { cause: options.cause });
    this.name = "VirtdevError";
    this.exitCode = options.exitCode;
    const hint = options.hint ?? [];
    this.hints = typeof hint === "string" ? [hint] : hint;
  }
}

/** A command line that cannot be parsed (exit 64). */
export class UsageError extends VirtdevError {
  constructor(message: string, options: { readonly hint?: string | readonly string[] } = {}) {
    super(message, { exitCode: ExitCode.usage, ...options });
    this.name = "UsageError";
  }
}

/** A project name that breaks the name rule (exit 2). */
export class InvalidNameError extends VirtdevError {
  constructor(message: string, options: { readonly hint?: string | readonly string[] } = {}) {
    super(message, { exitCode: ExitCode.invalidName, ...options });
    this.name = "InvalidNameError";
  }
}

/** An environment variable with a value virtdev cannot use (exit 65). */
export class ConfigError extends VirtdevError {
  /** The variable at fault. */
  readonly variable: string;

  constructor(variable: string, message: string, options: { readonly hint?: string | readonly string[] } = {}) {
    super(message, { exitCode: ExitCode.invalidConfig, ...options });
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** Another virtdev process holds the store lock (exit 75). */
export class LockBusyError extends VirtdevError {
  /** The PID of the holder, when it could be read. */
  readonly holderPid: number | undefined;

  constructor(message: string, options: { readonly holderPid?: number; readonly hint?: string | readonly string[] }) {
    super(message, { exitCode: ExitCode.lockBusy, hint: options.hint });
    this.name = "LockBusyError";
    this.holderPid = options.holderPid;
  }
}

/** An external program is missing (exit 69) or failed (exit 70). */
export class ToolError extends VirtdevError {
  constructor(message: string, options: VirtdevErrorOptions) {
    super(message, options);
    this.name = "ToolError";
  }
}
