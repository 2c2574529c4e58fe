/**
 * A project VM's network: which backend carries it, what the guest may
 * reach, and the SSH forward on host loopback.
 *
 * - `full` egress (the default) goes through passt, run by the host agent
 *   with the mapping of the gateway to the host's loopback turned off, so
 *   no address the guest can use leads to a service on the host's
 *   127.0.0.1. Where passt is missing, QEMU's user networking (SLIRP)
 *   remains, with a warning: its 10.0.2.2 *is* the host's loopback.
 * - `none` egress uses SLIRP in restricted mode: nothing leaves the VM
 *   (no DNS, no internet, no host); only the forwards come in.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { NetBackendSetting } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import { type ProjectPaths, readOptionalText } from "../store/store.ts";
import { writeFileAtomic } from "../store/atomic_write.ts";
import { escapeOptionValue } from "./qemu_args.ts";

/** What a guest may reach. */
export type Egress = "none" | "full";

/** The egress settings `net` accepts. */
export const egressSettings: readonly Egress[] = ["none", "full"];

/** The backend that carries a VM's network. */
export type NetBackend = "passt" | "slirp";

/** The passt binary. */
export const passtProgram = "passt";

/** How to install passt, for hints and warnings. */
export const passtInstallHint = "Install passt: 'pacman -S passt' (Arch) or 'apt install passt' (Debian).";

/** Exit codes of network setup, shared by `start`. */
export const NetworkExit = { passtMissing: 69 } as const;

/** passt as the host agent runs it. */
export interface PasstLaunch {
  readonly program: string;
  readonly args: readonly string[];
  /** The unix socket QEMU connects to. */
  readonly socket: string;
  /** passt's directory: its socket and its log. */
  readonly dir: string;
}

/** A VM's network, decided at start. */
export interface NetworkPlan {
  readonly backend: NetBackend;
  readonly egress: Egress;
  /** QEMU's `-netdev` value. */
  readonly netdev: string;
  /** passt, for the passt backend. */
  readonly passt?: PasstLaunch;
  /** Said once at start: the SLIRP backend lets the guest reach the host's loopback. */
  readonly warning?: string;
}

/** Which option turns off passt's mapping of addresses to the host's loopback. */
export type PasstFlavour = "map-host-loopback" | "no-map-gw";

/**
 * The options that keep a guest away from the host's loopback, for the
 * installed passt: current passt has `--map-host-loopback none` and
 * `--map-guest-addr none`; older ones (Debian 12's) `--no-map-gw`.
 */
export function passtIsolationOptions(flavour: PasstFlavour): string[] {
  return flavour === "map-host-loopback"
    ? ["--map-host-loopback", "none", "--map-guest-addr", "none"]
    : ["--no-map-gw"];
}

/** Reads which flavour `passt --help` describes; `undefined` when it names neither option. */
export function passtFlavourOf(help: string): PasstFlavour | undefined {
  if (help.includes("--map-host-loopback")) return "map-host-loopback";
  if (help.includes("--no-map-gw")) return "no-map-gw";
  return undefined;
}

/** The installed passt's flavour, or `undefined` when passt is not installed. */
export async function detectPasst(): Promise<PasstFlavour | undefined> {
  let help: string;
  try {
    const result = await runTool(passtProgram, ["--help"], { allowFailure: true });
    help = `${result.stdout}\n${result.stderr}`;
  } catch (error) {
    if (error instanceof VirtdevError && error.exitCode === 69) return undefined;
    throw error;
  }
  return passtFlavourOf(help) ?? "no-map-gw";
}

/**
 * Decides a VM's network.
 *
 * @param options.passt the installed passt's flavour, `undefined` when missing.
 * @param options.asRoot whether virtdev runs as root. passt would then
 *   drop to nobody before it binds its socket, which nobody cannot reach
 *   below the store's 0700 directories; so it is told to stay root (its
 *   own sandbox, namespaces and seccomp, still applies).
 * @throws {VirtdevError} exit 69 when passt is asked for and missing.
 */
export function planNetwork(
  paths: ProjectPaths,
  options: {
    readonly egress: Egress;
    readonly backend: NetBackendSetting;
    readonly sshPort: number;
    readonly passt: PasstFlavour | undefined;
    readonly asRoot: boolean;
  },
): NetworkPlan {
  const forward = `hostfwd=tcp:127.0.0.1:${options.sshPort}-:22`;
  if (options.egress === "none") {
    return { backend: "slirp", egress: "none", netdev: `user,id=net0,restrict=on,${forward}` };
  }
  if (options.backend === "passt" && options.passt === undefined) {
    throw new VirtdevError("VIRTDEV_NET_BACKEND=passt, but passt is not installed.", {
      exitCode: NetworkExit.passtMissing,
      hint: [passtInstallHint, "Or set VIRTDEV_NET_BACKEND=auto to fall back to QEMU's user networking."],
    });
  }
  if (options.backend === "slirp" || options.passt === undefined) {
    return {
      backend: "slirp",
      egress: "full",
      netdev: `user,id=net0,${forward}`,
      warning: options.backend === "slirp"
        ? "VIRTDEV_NET_BACKEND=slirp: the guest can reach services on this host's loopback through 10.0.2.2."
        : `passt is not installed, so the guest can reach services on this host's loopback through 10.0.2.2. ${passtInstallHint}`,
    };
  }
  const dir = join(paths.runDir, "net");
  const socket = passtSocketPath(paths);
  return {
    backend: "passt",
    egress: "full",
    netdev: `stream,id=net0,server=off,addr.type=unix,addr.path=${escapeOptionValue(socket)}`,
    passt: {
      program: passtProgram,
      args: [
        "--foreground",
        "--socket",
        socket,
        "--log-file",
        join(dir, "passt.log"),
        "--tcp-ports",
        `127.0.0.1/${options.sshPort}:22`,
        ...passtIsolationOptions(options.passt),
        ...(options.asRoot ? ["--runas", "0:0"] : []),
      ],
      socket,
      dir,
    },
  };
}

/**
 * The longest socket path passt binds whole: it cuts longer ones short
 * (silently, on Debian 12's passt), and QEMU then finds nothing to connect to.
 */
export const passtMaxSocketPath = 98;

/** Where passt's socket goes: short, because of {@link passtMaxSocketPath}. */
export function passtSocketPath(paths: ProjectPaths): string {
  return join(paths.runDir, "net", "sock");
}

/**
 * The egress kept for the project by `virtdev net` (`full` when unset).
 *
 * @throws {VirtdevError} exit 70 when the file holds something else.
 */
export async function readProjectEgress(paths: ProjectPaths): Promise<Egress> {
  const text = (await readOptionalText(paths.egress))?.trim();
  if (text === undefined || text === "") return "full";
  if (!(egressSettings as readonly string[]).includes(text)) {
    throw new VirtdevError(`The network setting of ${paths.name} is unreadable: ${paths.egress}.`, {
      exitCode: 70,
      hint: `Set it again: virtdev net ${paths.name} full`,
    });
  }
  return text as Egress;
}

/** Keeps `egress` for the project's next starts. */
export async function writeProjectEgress(paths: ProjectPaths, egress: Egress): Promise<void> {
  await writeFileAtomic(paths.egress, `${egress}\n`);
}
