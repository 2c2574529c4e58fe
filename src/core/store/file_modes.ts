/**
 * Who may read what virtdev keeps. Everything under `VIRTDEV_HOME` is the
 * user's alone: directories 0700, files 0600, and the sealed base's files
 * read-only (0444) inside them. The monitor socket runs host commands and
 * the console is a root shell in the guest, so nothing may be left to the
 * umask.
 *
 * @module
 */

/** Directories virtdev makes. */
export const privateDirectoryMode = 0o700;
/** Files virtdev writes. */
export const privateFileMode = 0o600;
/** The sealed base's files: read-only, inside a private directory. */
export const readOnlyFileMode = 0o444;

/**
 * Makes directory `path` (and missing parents) if needed and sets it to
 * 0700; the umask would otherwise decide.
 */
export async function ensurePrivateDirectory(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode: privateDirectoryMode });
  await Deno.chmod(path, privateDirectoryMode);
}

/** Sets a file another program wrote (qemu-img, ssh-keygen) to 0600. */
export async function makePrivate(path: string): Promise<void> {
  await Deno.chmod(path, privateFileMode);
}

/**
 * Tightens `VIRTDEV_HOME` to 0700 when it grants anything to group or
 * others (a store made by an older virtdev, or by hand). Only a directory
 * that holds virtdev's lock file counts as a store: a misdirected
 * `VIRTDEV_HOME` (the user's home, say) is left alone. Synchronous: it runs
 * once, when a command first reaches the store.
 *
 * @returns the mode it had, when it was changed.
 */
export function tightenStoreRoot(root: string, lockFile: string): number | undefined {
  try {
    const mode = (Deno.statSync(root).mode ?? 0) & 0o777;
    if ((mode & 0o077) === 0 || !Deno.lstatSync(lockFile).isFile) return undefined;
    Deno.chmodSync(root, mode & 0o700);
    return mode;
  } catch (error) {
    // Not made yet, or not ours to change: nothing to tighten.
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable) return undefined;
    if (error instanceof Deno.errors.PermissionDenied) return undefined;
    throw error;
  }
}
