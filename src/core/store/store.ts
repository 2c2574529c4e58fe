/**
 * The on-disk layout of `VIRTDEV_HOME`, the project-name rule, and project
 * enumeration. Every path virtdev touches under its home is spelled here.
 *
 * @module
 */
import { join } from "./path.ts";
import { InvalidNameError } from "./errors.ts";

/** The name rule: 1 to 64 (HOST_NAME_MAX) letters, digits, `_` and `-`. */
export const projectNamePattern: RegExp = /^[A-Za-z0-9_-]{1,64}$/;

/** The name of the maintenance VM, a virtual project (see `maintain`). */
export const maintenanceVmName = "maintenance";

/** Names that refer to virtdev's own things and cannot be projects. */
export const reservedNames: readonly string[] = ["maintenance", "base"];

/** Whether `name` obeys the project-name rule (reserved names included). */
export function isValidProjectName(name: string): boolean {
  // A leading '-' would read as an option to every tool the name reaches,
  // and hostnames may not start with one.
  return projectNamePattern.test(name) && !name.startsWith("-");
}

/** The original tool's name rule: 1 to 100 letters, digits, `_` and `-`, a leading `-` and `base` included. */
export const legacyProjectNamePattern: RegExp = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * Whether `name` is a project name the original virtdev allowed and this
 * one refuses (65 to 100 characters, a leading `-`, `base`). Such projects
 * are listed with a warning and may be inspected, stopped, destroyed and
 * renamed, but not started or created.
 */
export function isLegacyProjectName(name: string): boolean {
  return legacyProjectNamePattern.test(name) && name !== maintenanceVmName &&
    (!isValidProjectName(name) || reservedNames.includes(name));
}

/**
 * Checks `name` against the project-name rule; with `legacy`, a name of the
 * original tool passes too.
 *
 * @throws {InvalidNameError} exit 2, with the rule in the hint.
 */
export function validateProjectName(name: string, options: { readonly legacy?: boolean } = {}): string {
  if (options.legacy && isLegacyProjectName(name)) return name;
  if (!isValidProjectName(name)) {
    const shown = JSON.stringify(name);
    const hints = ["A project name is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-', and does not start with '-'."];
    if (isLegacyProjectName(name)) {
      hints.push(
        `A project the original virtdev made under this name can be renamed: virtdev move -- ${name} NEW-NAME`,
      );
    }
    throw new InvalidNameError(`Invalid project name: ${shown}.`, { hint: hints });
  }
  return name;
}

/** Whether a directory named `name` under `projects/` is a project. */
export function isProjectEntryName(name: string): boolean {
  return isValidProjectName(name) && !reservedNames.includes(name);
}

/** The files of a base (and of its installation and maintenance copies), besides its generation. */
export const baseFileNames = ["system.qcow2", "home.qcow2", "nvram"] as const;

/** Paths of the sealed base (or of a staging copy with the same shape). */
export interface BasePaths {
  /** The base directory. */
  readonly dir: string;
  /** The system disk. */
  readonly systemImage: string;
  /** The home disk. */
  readonly homeImage: string;
  /** The UEFI variable-store template. */
  readonly nvram: string;
  /** The generation counter. */
  readonly generation: string;
  /**
   * The kernel, initramfs and command line the base boots by default, as
   * its installation or maintenance guest handed them over (`boot/`):
   * projects boot them directly, without firmware or boot loader.
   */
  readonly boot: string;
}

/**
 * Files that exist only while a project's VM runs, all in the project's
 * `run/` directory (0700), so that its sockets are never reachable by
 * another user and `wait` can watch one small directory.
 */
export interface RuntimePaths {
  /** The HMP monitor socket. */
  readonly monitorSocket: string;
  /** The QMP (control) socket. */
  readonly qmpSocket: string;
  /** The serial console socket, served by the host agent. */
  readonly consoleSocket: string;
  /** QEMU's pidfile. */
  readonly pidFile: string;
  /** How the VM was launched (supervisor, unit, QEMU's command line). */
  readonly record: string;
  /** The host agent's state: its PID, the launch's outcome, the guest's readiness. */
  readonly agent: string;
  /** Present while a stop is in progress; holds the stopping process's PID. */
  readonly stopping: string;
  /** passt's directory: its socket and its log. */
  readonly network: string;
  /** A second QMP socket, on which the host agent of the maintenance VM watches for its shutdown. */
  readonly qmpWatchSocket: string;
  /** A disposable boot's overlays over the project's disks and its nvram copy, dropped at stop. */
  readonly ephemeral: string;
  /** Present while a suspend writes the VM's state: its PID and token, for the host agent's guard. */
  readonly suspending: string;
  /** The control socket of the host agent's SSH connection, which later logins share (ssh's ControlPath). */
  readonly sshControl: string;
}

/** Paths of one project's files: the base's shape plus its own. */
export interface ProjectPaths extends BasePaths {
  /** The project's name. */
  readonly name: string;
  /** The project-local backup manifest. */
  readonly manifest: string;
  /** The SSH port, chosen at the first start and kept. */
  readonly port: string;
  /** The guest's SSH host key (private; passed to the guest by fw_cfg). */
  readonly hostKey: string;
  /** Its public half, which the guest also gets by fw_cfg (deriving it there costs a process). */
  readonly hostKeyPublic: string;
  /** The pinned public host key, as an OpenSSH known_hosts file. */
  readonly knownHosts: string;
  /** What the guest may reach (`none` or `full`), when set with `virtdev net`. */
  readonly egress: string;
  /** The project's forwards (JSON), kept across starts. */
  readonly forwards: string;
  /** Its own VM size (`virtdev set`), JSON; the configuration's defaults where absent. */
  readonly settings: string;
  /** A random id of this project's disks, made by create and clone: the guest renews its machine-id when it changes. */
  readonly instance: string;
  /** The firmware variables saved with each snapshot (`virtdev snapshot`); the disks hold the rest. */
  readonly snapshotsDir: string;
  /** The serial console of the current (or last) boot; `console.log.1` holds what came before. */
  readonly consoleLog: string;
  /** The supervisor's log: starts, stops, exits and QEMU's own errors. */
  readonly vmLog: string;
  /** How the last boot ended, as the host agent saw it on QMP (the maintenance VM only). */
  readonly shutdownProof: string;
  /** Why the last boot stopped running, when QEMU stopped it (a panic, a KVM error): `halt.json`, cleared by the next start. */
  readonly haltRecord: string;
  /** A suspended VM's memory and device state, with what it belongs to (`suspend`); consumed by the resume. */
  readonly suspended: string;
  /** The warm image disposable runs resume from: a ready disposable boot's state and overlays (kept). */
  readonly template: string;
  /**
   * Present once the guest said its own default kernel is not the base's
   * (a kernel updated inside the project): it boots through its firmware
   * and boot loader from then on.
   */
  readonly kernelDiverged: string;
  /** The directory of the runtime files. */
  readonly runDir: string;
  /** Runtime files. */
  readonly runtime: RuntimePaths;
}

/** The layout of one `VIRTDEV_HOME`. */
export class Store {
  /** The root, `VIRTDEV_HOME`. */
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The lock file. */
  get lockFile(): string {
    return join(this.root, "lock");
  }

  /** The directory of project directories. */
  get projectsDir(): string {
    return join(this.root, "projects");
  }

  /** The directory of backup snapshots. */
  get backupsDir(): string {
    return join(this.root, "backups");
  }

  /** The sealed base. */
  get base(): BasePaths {
    return _basePaths(join(this.root, "system"));
  }

  /** The maintenance copy of the base that `maintain` boots and reseals. */
  get maintenance(): BasePaths {
    return _basePaths(join(this.root, "maintenance"));
  }

  /**
   * The maintenance VM as a virtual project: its runtime files, port, host
   * key and console under `projects/maintenance/`, its disks those of
   * {@link Store.maintenance}.
   */
  maintenanceVm(): ProjectPaths {
    return { ...this.project(maintenanceVmName), ..._diskPaths(this.maintenance) };
  }

  /**
   * The directory of kept base generations: a reseal keeps the old base
   * under `generations/<n>/` while a project's deltas still use it.
   */
  get generationsDir(): string {
    return join(this.root, "generations");
  }

  /** The kept base of generation `generation` (a decimal number). */
  keptBase(generation: string): BasePaths {
    return _basePaths(join(this.generationsDir, generation));
  }

  /** The journal of a reseal in progress (see `reseal.ts`). */
  get resealJournal(): string {
    return join(this.root, "reseal.journal");
  }

  /** The installation staging area that `seal` turns into the base. */
  get installation(): BasePaths {
    return _basePaths(join(this.root, "installation"));
  }

  /** Paths of project `name` (which must already be validated). */
  project(name: string): ProjectPaths {
    const dir = join(this.projectsDir, name);
    const run = join(dir, "run");
    return {
      ..._basePaths(dir),
      name,
      manifest: join(dir, "manifest"),
      port: join(dir, "port"),
      hostKey: join(dir, "host_key"),
      hostKeyPublic: join(dir, "host_key.pub"),
      knownHosts: join(dir, "known_hosts"),
      egress: join(dir, "net"),
      forwards: join(dir, "forwards.json"),
      settings: join(dir, "settings.json"),
      instance: join(dir, "instance"),
      snapshotsDir: join(dir, "snapshots"),
      consoleLog: join(dir, "console.log"),
      vmLog: join(dir, "vm.log"),
      shutdownProof: join(dir, "shutdown.json"),
      haltRecord: join(dir, "halt.json"),
      suspended: join(dir, "suspended"),
      template: join(dir, "template"),
      kernelDiverged: join(dir, "kernel-diverged"),
      runDir: run,
      runtime: {
        monitorSocket: join(run, "monitor.sock"),
        qmpSocket: join(run, "qmp.sock"),
        consoleSocket: join(run, "console.sock"),
        pidFile: join(run, "qemu.pid"),
        record: join(run, "runtime.json"),
        agent: join(run, "agent.json"),
        stopping: join(run, "stopping"),
        network: join(run, "net"),
        qmpWatchSocket: join(run, "qmp-watch.sock"),
        ephemeral: join(run, "ephemeral"),
        suspending: join(run, "suspending"),
        sshControl: join(run, "ssh.ctl"),
      },
    };
  }

  /** Backups of project `name`. */
  backups(name: string): string {
    return join(this.backupsDir, name);
  }

  /**
   * The projects, sorted. Entries that are not directories, break the name
   * rule or carry a reserved name are skipped.
   */
  async listProjects(): Promise<string[]> {
    return await this.#listEntries(isProjectEntryName);
  }

  /** Projects under names only the original tool allowed ({@link isLegacyProjectName}), sorted. */
  async listLegacyProjects(): Promise<string[]> {
    return await this.#listEntries(isLegacyProjectName);
  }

  async #listEntries(accept: (name: string) => boolean): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.projectsDir)) {
        if (entry.isDirectory && accept(entry.name)) names.push(entry.name);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    return names.sort();
  }
}

/** The disks and firmware variables of `base`, without its directory. */
function _diskPaths(base: BasePaths): Pick<BasePaths, "systemImage" | "homeImage" | "nvram"> {
  return { systemImage: base.systemImage, homeImage: base.homeImage, nvram: base.nvram };
}

function _basePaths(dir: string): BasePaths {
  return {
    dir,
    systemImage: join(dir, "system.qcow2"),
    homeImage: join(dir, "home.qcow2"),
    nvram: join(dir, "nvram"),
    generation: join(dir, "generation"),
    boot: join(dir, "boot"),
  };
}

/** Whether `path` exists (without following a final symlink). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Reads a small text file, or `undefined` when it does not exist. */
export async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
