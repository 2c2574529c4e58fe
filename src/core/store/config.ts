/**
 * Configuration from the environment: every variable virtdev reads, its
 * default, and its validation. Values are checked here, up front, so that a
 * bad value never reaches QEMU.
 *
 * @module
 */
import { isAbsolute, join } from "./path.ts";
import { ConfigError, ExitCode, VirtdevError } from "./errors.ts";
import { parseSize } from "./size.ts";

/** Which hardware acceleration QEMU uses. */
export type Accel = "auto" | "kvm" | "tcg";

/** Which supervisor runs project VMs. */
export type SupervisorKind = "auto" | "systemd" | "process";

/** Which network backend carries a VM with full egress. */
export type NetBackendSetting = "auto" | "passt" | "slirp";

/** The validated configuration. Sizes are bytes, timeouts seconds. */
export interface Config {
  /** `VIRTDEV_HOME`: where bases, projects, backups and keys live. */
  readonly home: string;
  /** `VIRTDEV_SSH_KEY`: the private key; the public key is `<key>.pub`. */
  readonly sshKey: string;
  /** `VIRTDEV_CACHE`: downloads and build products. */
  readonly cache: string;
  /** `${XDG_CONFIG_HOME}/virtdev`: manifests and provision scripts. */
  readonly configDir: string;
  /** `VIRTDEV_TIMEZONE`: the guest's time zone (default: the host's). */
  readonly timezone: string;
  /** `VIRTDEV_LOCALE`: the Arch installer's locale (default `en_US.UTF-8`). */
  readonly locale: string;
  /** `VIRTDEV_KEYMAP`: the Arch installer's console keymap (default `us`). */
  readonly keymap: string;
  /** `VIRTDEV_SYSTEM_DISK_SIZE` in bytes. */
  readonly systemDiskSize: number;
  /** `VIRTDEV_HOME_DISK_SIZE` in bytes. */
  readonly homeDiskSize: number;
  /** `VIRTDEV_VM_MEMORY` in MiB. */
  readonly vmMemoryMiB: number;
  /** `VIRTDEV_VM_CPUS`. */
  readonly vmCpus: number;
  /** `VIRTDEV_STOP_TIMEOUT` in seconds. */
  readonly stopTimeout: number;
  /** `VIRTDEV_WAIT_TIMEOUT` in seconds. */
  readonly waitTimeout: number;
  /** `VIRTDEV_INSTALL_TIMEOUT`: seconds the install boot may take. */
  readonly installTimeout: number;
  /** `VIRTDEV_CONSOLE_LOG_SIZE`: the most bytes a VM's console log keeps on disk. */
  readonly consoleLogBytes: number;
  /** `OVMF_CODE`, when set; otherwise detected by {@link resolveFirmware}. */
  readonly ovmfCode: string | undefined;
  /** `OVMF_VARS`, when set; otherwise detected by {@link resolveFirmware}. */
  readonly ovmfVars: string | undefined;
  /** `VIRTDEV_ACCEL`. */
  readonly accel: Accel;
  /** `VIRTDEV_SUPERVISOR`. */
  readonly supervisor: SupervisorKind;
  /** `VIRTDEV_NET_BACKEND`. */
  readonly netBackend: NetBackendSetting;
  /**
   * `VIRTDEV_BOOT`: `auto` boots a project straight into the base's kept
   * kernel where it has them; `firmware` always goes through the UEFI
   * firmware and the guest's boot loader.
   */
  readonly boot: "auto" | "firmware";
  /**
   * `VIRTDEV_DNS_UPSTREAM`: the resolvers the egress filter asks
   * (`address[:port]`, comma-separated); `/etc/resolv.conf`'s when unset.
   */
  readonly dnsUpstream: readonly string[] | undefined;
  /** The user's home directory (`HOME`). */
  readonly userHome: string;
}

/** The environment variables virtdev reads, for the README and `--allow-env`. */
export const configVariables = [
  "VIRTDEV_HOME",
  "VIRTDEV_SSH_KEY",
  "VIRTDEV_CACHE",
  "VIRTDEV_TIMEZONE",
  "VIRTDEV_LOCALE",
  "VIRTDEV_KEYMAP",
  "VIRTDEV_SYSTEM_DISK_SIZE",
  "VIRTDEV_HOME_DISK_SIZE",
  "VIRTDEV_VM_MEMORY",
  "VIRTDEV_VM_CPUS",
  "VIRTDEV_STOP_TIMEOUT",
  "VIRTDEV_WAIT_TIMEOUT",
  "VIRTDEV_INSTALL_TIMEOUT",
  "VIRTDEV_CONSOLE_LOG_SIZE",
  "OVMF_CODE",
  "OVMF_VARS",
  "VIRTDEV_ACCEL",
  "VIRTDEV_SUPERVISOR",
  "VIRTDEV_NET_BACKEND",
  "VIRTDEV_BOOT",
  "VIRTDEV_DNS_UPSTREAM",
  "XDG_DATA_HOME",
  "XDG_CACHE_HOME",
  "XDG_CONFIG_HOME",
  "HOME",
] as const;

/**
 * Every environment variable virtdev reads: the configuration, plus those
 * that steer colour, debugging, tests and the tools it runs. The `virtdev`
 * task's `--allow-env` lists exactly these (a test keeps them equal).
 */
export const environmentVariables: readonly string[] = [
  ...configVariables,
  "NO_COLOR",
  "TERM",
  "USER",
  "PATH",
  "XDG_RUNTIME_DIR",
  "DBUS_SESSION_BUS_ADDRESS",
  "VIRTDEV_DEBUG",
  "VIRTDEV_TEST_CRASH_AT",
];

/** A read-only view of environment variables. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** Reads the variables of {@link environmentVariables} from the process. */
export function processEnvironment(): Environment {
  const env: Record<string, string | undefined> = {};
  for (const name of environmentVariables) env[name] = Deno.env.get(name);
  return env;
}

/** What the host has, for the VM size defaults. */
export interface HostResources {
  /** CPUs this process may use. */
  readonly cpus: number;
  /** Total memory in MiB. */
  readonly memoryMiB: number;
}

/** The host's CPUs and memory; 4 and 16 GiB where they cannot be read. */
export function hostResources(): HostResources {
  let memoryMiB = 16384;
  try {
    memoryMiB = Math.floor(Deno.systemMemoryInfo().total / 1024 ** 2);
  } catch {
    // Without --allow-sys=systemMemoryInfo: the 4 GiB default stands.
  }
  return { cpus: navigator.hardwareConcurrency || 4, memoryMiB };
}

/**
 * The VM size defaults: min(4, host CPUs), and min(4 GiB, a quarter of the
 * host's memory) rounded down to 64 MiB, never under 512 MiB. More vCPUs
 * than host cores only slow a TCG guest down.
 */
export function defaultVmSize(host: HostResources): { readonly cpus: number; readonly memoryMiB: number } {
  const quarter = Math.floor(host.memoryMiB / 4 / 64) * 64;
  return { cpus: Math.max(1, Math.min(4, host.cpus)), memoryMiB: Math.max(512, Math.min(4096, quarter)) };
}

/**
 * Reads and validates the configuration from `env`.
 *
 * @throws {ConfigError} naming the first variable with an unusable value.
 */
export function loadConfig(env: Environment, options: { readonly host?: HostResources } = {}): Config {
  const vmSize = defaultVmSize(options.host ?? hostResources());
  const get = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === "" ? undefined : value;
  };
  const userHome = get("HOME");
  const xdg = (name: string, fallback: string): string => {
    const value = get(name);
    if (value !== undefined) return _absolute(name, value);
    if (userHome === undefined) {
      throw new ConfigError("HOME", `HOME is not set, so ${name} has no default.`, {
        hint: `Set HOME, or set ${name} to an absolute path.`,
      });
    }
    return join(_absolute("HOME", userHome), fallback);
  };
  const path = (name: string, fallback: () => string): string => {
    const value = get(name);
    return value === undefined ? fallback() : _absolute(name, value);
  };

  const home = path("VIRTDEV_HOME", () => join(xdg("XDG_DATA_HOME", ".local/share"), "virtdev"));
  const cache = path("VIRTDEV_CACHE", () => join(xdg("XDG_CACHE_HOME", ".cache"), "virtdev"));
  const configDir = join(xdg("XDG_CONFIG_HOME", ".config"), "virtdev");
  const ovmfCode = get("OVMF_CODE");
  const ovmfVars = get("OVMF_VARS");

  const explicitZone = get("VIRTDEV_TIMEZONE");
  const timezone = explicitZone === undefined ? undefined : _timezone(explicitZone);
  return {
    home,
    sshKey: path("VIRTDEV_SSH_KEY", () => join(home, "ssh", "id")),
    cache,
    configDir,
    // Asking the runtime for the host's zone loads ICU (~20 ms): only the installers need it.
    get timezone() {
      return timezone ?? _hostTimezone();
    },
    locale: _word("VIRTDEV_LOCALE", get("VIRTDEV_LOCALE") ?? "en_US.UTF-8"),
    keymap: _word("VIRTDEV_KEYMAP", get("VIRTDEV_KEYMAP") ?? "us"),
    systemDiskSize: _diskSize("VIRTDEV_SYSTEM_DISK_SIZE", get("VIRTDEV_SYSTEM_DISK_SIZE") ?? "24G"),
    homeDiskSize: _diskSize("VIRTDEV_HOME_DISK_SIZE", get("VIRTDEV_HOME_DISK_SIZE") ?? "48G"),
    vmMemoryMiB: _memory(get("VIRTDEV_VM_MEMORY") ?? String(vmSize.memoryMiB)),
    vmCpus: parseVmCpus(get("VIRTDEV_VM_CPUS") ?? String(vmSize.cpus)),
    stopTimeout: _integer("VIRTDEV_STOP_TIMEOUT", get("VIRTDEV_STOP_TIMEOUT") ?? "60", {
      min: 1,
      max: 86400,
      unit: "seconds",
    }),
    waitTimeout: _integer("VIRTDEV_WAIT_TIMEOUT", get("VIRTDEV_WAIT_TIMEOUT") ?? "120", {
      min: 1,
      max: 86400,
      unit: "seconds",
    }),
    installTimeout: _integer("VIRTDEV_INSTALL_TIMEOUT", get("VIRTDEV_INSTALL_TIMEOUT") ?? "1800", {
      min: 1,
      max: 86400,
      unit: "seconds",
    }),
    consoleLogBytes: _logSize("VIRTDEV_CONSOLE_LOG_SIZE", get("VIRTDEV_CONSOLE_LOG_SIZE") ?? "16M"),
    ovmfCode: ovmfCode === undefined ? undefined : _absolute("OVMF_CODE", ovmfCode),
    ovmfVars: ovmfVars === undefined ? undefined : _absolute("OVMF_VARS", ovmfVars),
    accel: _choice("VIRTDEV_ACCEL", get("VIRTDEV_ACCEL") ?? "auto", ["auto", "kvm", "tcg"] as const),
    supervisor: _choice(
      "VIRTDEV_SUPERVISOR",
      get("VIRTDEV_SUPERVISOR") ?? "auto",
      [
        "auto",
        "systemd",
        "process",
      ] as const,
    ),
    netBackend: _choice(
      "VIRTDEV_NET_BACKEND",
      get("VIRTDEV_NET_BACKEND") ?? "auto",
      ["auto", "passt", "slirp"] as const,
    ),
    boot: _choice("VIRTDEV_BOOT", get("VIRTDEV_BOOT") ?? "auto", ["auto", "firmware"] as const),
    dnsUpstream: _dnsUpstream(get("VIRTDEV_DNS_UPSTREAM")),
    userHome: userHome === undefined ? "/" : _absolute("HOME", userHome),
  };
}

/** UEFI firmware: the read-only code and the template for a VM's variables. */
export interface Firmware {
  /** Path of the OVMF code image. */
  readonly code: string;
  /** Path of the OVMF variable-store template. */
  readonly vars: string;
}

/** Firmware locations of the distributions we know, most specific first. */
export const firmwareCandidates: readonly Firmware[] = [
  // Arch (edk2-ovmf)
  { code: "/usr/share/edk2/x64/OVMF_CODE.4m.fd", vars: "/usr/share/edk2/x64/OVMF_VARS.4m.fd" },
  // Debian and Ubuntu (ovmf)
  { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
  { code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/usr/share/OVMF/OVMF_VARS.fd" },
  // Fedora (edk2-ovmf)
  { code: "/usr/share/edk2/ovmf/OVMF_CODE.fd", vars: "/usr/share/edk2/ovmf/OVMF_VARS.fd" },
  { code: "/usr/share/edk2/x64/OVMF_CODE.fd", vars: "/usr/share/edk2/x64/OVMF_VARS.fd" },
];

/** Exit code when no firmware can be found. */
export const firmwareMissingExitCode = 5;

/**
 * Finds the OVMF firmware: the configured paths when set, otherwise the
 * first complete pair among {@link firmwareCandidates}.
 *
 * @throws {VirtdevError} exit 5 when a file is missing.
 */
export function resolveFirmware(
  config: Pick<Config, "ovmfCode" | "ovmfVars">,
  options: { readonly candidates?: readonly Firmware[] } = {},
): Firmware {
  const exists = (path: string): boolean => {
    try {
      return Deno.statSync(path).isFile;
    } catch (error) {
      // Not permitted to look is not "missing": let the handler say so.
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) return false;
      throw error;
    }
  };
  const candidates = options.candidates ?? firmwareCandidates;
  const detected = candidates.find((pair) => exists(pair.code) && exists(pair.vars));
  const code = config.ovmfCode ?? detected?.code;
  const vars = config.ovmfVars ?? detected?.vars;
  for (const [name, value] of [["OVMF_CODE", code], ["OVMF_VARS", vars]] as const) {
    if (value === undefined) {
      throw new VirtdevError("No UEFI firmware (OVMF) found.", {
        exitCode: firmwareMissingExitCode,
        hint: [
          "Install it: 'pacman -S edk2-ovmf' (Arch), 'apt install ovmf' (Debian), 'dnf install edk2-ovmf' (Fedora),",
          `or set ${name} to the firmware file.`,
        ],
      });
    }
    if (!exists(value)) {
      throw new VirtdevError(`${name} does not exist: '${value}'.`, {
        exitCode: firmwareMissingExitCode,
        hint: `Point ${name} at an OVMF firmware file, or unset it to detect one.`,
      });
    }
  }
  return { code: code!, vars: vars! };
}

function _absolute(name: string, value: string): string {
  if (!isAbsolute(value)) {
    throw new ConfigError(name, `${name} must be an absolute path, not '${value}'.`);
  }
  if (value.includes("\0") || value.includes("\n")) {
    throw new ConfigError(name, `${name} contains a control character.`);
  }
  return value.length > 1 ? value.replace(/\/+$/, "") : value;
}

function _diskSize(name: string, value: string): number {
  return _size(name, value, { min: [64 * 1024 ** 2, "64M"], max: [64 * 1024 ** 4, "64T"], example: "24G" });
}

function _logSize(name: string, value: string): number {
  return _size(name, value, { min: [64 * 1024, "64K"], max: [1024 ** 4, "1T"], example: "16M" });
}

function _size(
  name: string,
  value: string,
  limits: {
    readonly min: readonly [number, string];
    readonly max: readonly [number, string];
    readonly example: string;
  },
): number {
  let bytes: number;
  try {
    bytes = parseSize(value);
  } catch {
    throw new ConfigError(name, `${name} is not a size: '${value}'.`, {
      hint: `Use a number with a unit, such as ${name}=${limits.example}.`,
    });
  }
  if (bytes < limits.min[0]) {
    throw new ConfigError(name, `${name} is too small: '${value}' (at least ${limits.min[1]}).`);
  }
  if (bytes > limits.max[0]) {
    throw new ConfigError(name, `${name} is too large: '${value}' (at most ${limits.max[1]}).`);
  }
  return bytes;
}

/**
 * A VM's memory: MiB as a whole number, or a size with a unit, 128 MiB to
 * 16 TiB. `name` is what the messages call it (a variable, or `memory`).
 *
 * @throws {ConfigError} naming `name`.
 */
export function parseVmMemory(value: string, name = "VIRTDEV_VM_MEMORY"): number {
  return _memory(value, name);
}

/**
 * A VM's CPU count, 1 to 255.
 *
 * @throws {ConfigError} naming `name`.
 */
export function parseVmCpus(value: string, name = "VIRTDEV_VM_CPUS"): number {
  return _integer(name, value, { min: 1, max: 255, unit: "CPUs" });
}

function _memory(value: string, name = "VIRTDEV_VM_MEMORY"): number {
  // A bare number is MiB, as QEMU's -m reads it; a unit may be given.
  let mib: number;
  if (/^\d+$/.test(value)) {
    mib = Number(value);
  } else {
    try {
      mib = parseSize(value) / 1024 ** 2;
    } catch {
      throw new ConfigError(name, `${name} is not a memory size: '${value}'.`, {
        hint: `Use MiB as a whole number (${name}=4096) or a size with a unit (${name}=4G).`,
      });
    }
  }
  if (!Number.isInteger(mib)) {
    throw new ConfigError(name, `${name} must be a whole number of MiB: '${value}'.`);
  }
  if (mib < 128 || mib > 16 * 1024 * 1024) {
    throw new ConfigError(name, `${name} is out of range: '${value}' (128 MiB to 16 TiB).`);
  }
  return mib;
}

function _integer(
  name: string,
  value: string,
  range: { readonly min: number; readonly max: number; readonly unit: string },
): number {
  if (!/^\d+$/.test(value)) {
    throw new ConfigError(name, `${name} must be a whole number of ${range.unit}: '${value}'.`);
  }
  const number = Number(value);
  if (number < range.min || number > range.max) {
    throw new ConfigError(name, `${name} is out of range: '${value}' (${range.min} to ${range.max} ${range.unit}).`);
  }
  return number;
}

function _choice<const T extends string>(name: string, value: string, choices: readonly T[]): T {
  const found = choices.find((choice) => choice === value);
  if (found === undefined) {
    throw new ConfigError(name, `${name} must be one of ${choices.join(", ")}: '${value}'.`);
  }
  return found;
}

/** The host's time zone, as the runtime knows it (no file is read). */
function _hostTimezone(): string {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone && /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(zone) ? zone : "UTC";
}

/** A locale or keymap name: letters, digits and `._@-`. */
function _word(name: string, value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(value)) {
    throw new ConfigError(name, `${name} is not a valid name: '${value}'.`, {
      hint: name === "VIRTDEV_LOCALE" ? "For example en_US.UTF-8 or de_DE.UTF-8." : "For example us or de-latin1.",
    });
  }
  return value;
}

function _timezone(value: string): string {
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(value)) {
    throw new ConfigError("VIRTDEV_TIMEZONE", `VIRTDEV_TIMEZONE is not a time zone name: '${value}'.`, {
      hint: "Use a name from the tz database, such as UTC or Europe/Berlin.",
    });
  }
  return value;
}

function _dnsUpstream(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const list = value.split(",").map((entry) => entry.trim());
  for (const entry of list) {
    if (!/^([0-9.]+|\[[0-9a-fA-F:]+\])(:[0-9]{1,5})?$|^[0-9a-fA-F:]+$/.test(entry)) {
      throw new VirtdevError(`VIRTDEV_DNS_UPSTREAM has '${entry}', which is not an address[:port].`, {
        exitCode: ExitCode.invalidConfig,
        hint: "For example: VIRTDEV_DNS_UPSTREAM=127.0.0.53 or VIRTDEV_DNS_UPSTREAM=192.0.2.53:5353,[2001:db8::53]:53",
      });
    }
  }
  return list;
}
