/**
 * A project VM's network: which backend carries it, what the guest may
 * reach, and the SSH forward on host loopback.
 *
 * - Every zone but `none` goes through passt, run by the host agent with
 *   the mapping of the gateway to the host's loopback turned off, behind
 *   the egress filter (`egress/`), which QEMU's network connects to and
 *   which enforces the zone for every frame the guest sends.
 * - `none` uses SLIRP in restricted mode: nothing leaves the VM (no DNS,
 *   no internet, no host); only the forwards come in.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { NetBackendSetting } from "../store/config.ts";
import { VirtdevError } from "../store/errors.ts";
import { runTool } from "../store/process.ts";
import type { ProjectPaths } from "../store/store.ts";
import { escapeOptionValue } from "./qemu_args.ts";

/** What a guest may reach: a built-in zone or a custom zone's name (see `egress/`). */
export type Egress = string;

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
  /** Where it logs (`--log-file`), read back when it fails to start. */
  readonly logFile?: string;
}

/** A VM's network, decided at start. */
export interface NetworkPlan {
  readonly backend: NetBackend;
  /** The zone as the user named it. */
  readonly egress: Egress;
  /** Whether the egress filter carries it (passt's backend always; SLIRP never). */
  readonly filtered: boolean;
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
 * - Zone `none` uses SLIRP in restricted mode: nothing leaves the VM.
 * - Every other zone runs passt behind the egress filter, which enforces
 *   the zone outside the guest. Without passt they refuse to start (exit
 *   69): there is no silent fallback.
 * - `VIRTDEV_NET_BACKEND=slirp`, set on purpose, runs `full` on SLIRP
 *   (its 10.0.2.2 is the host's loopback, and it says so); it cannot
 *   enforce the other zones, which then refuse to start.
 *
 * @param options.zone the base zone of `egress` (a custom zone's base).
 * @param options.passt the installed passt's flavour, `undefined` when missing.
 * @param options.asRoot whether virtdev runs as root. passt would then
 *   drop to nobody before it binds its socket, which nobody cannot reach
 *   below the store's 0700 directories; so it is told to stay root (its
 *   own sandbox, namespaces and seccomp, still applies).
 * @throws {VirtdevError} exit 69 when the zone cannot be enforced here.
 */
export function planNetwork(
  paths: ProjectPaths,
  options: {
    readonly egress: Egress;
    readonly zone: string;
    readonly backend: NetBackendSetting;
    readonly sshPort: number;
    readonly passt: PasstFlavour | undefined;
    readonly asRoot: boolean;
  },
): NetworkPlan {
  const forward = `hostfwd=tcp:127.0.0.1:${options.sshPort}-:22`;
  const egress = options.egress;
  if (options.zone === "none") {
    return { backend: "slirp", egress, filtered: false, netdev: `user,id=net0,restrict=on,${forward}` };
  }
  if (options.backend === "slirp") {
    if (options.zone !== "full") {
      throw new VirtdevError(`Zone '${egress}' cannot be enforced with VIRTDEV_NET_BACKEND=slirp.`, {
        exitCode: NetworkExit.passtMissing,
        hint: [
          "Unset VIRTDEV_NET_BACKEND to use passt and the egress filter.",
          `Or let this project reach everything, the host's loopback included: virtdev net ${paths.name} full`,
        ],
      });
    }
    return {
      backend: "slirp",
      egress,
      filtered: false,
      netdev: `user,id=net0,${forward}`,
      warning: "VIRTDEV_NET_BACKEND=slirp: the guest can reach services on this host's loopback through 10.0.2.2.",
    };
  }
  if (options.passt === undefined) {
    throw new VirtdevError(`passt is not installed, so zone '${egress}' cannot be enforced.`, {
      exitCode: NetworkExit.passtMissing,
      hint: [
        passtInstallHint,
        `Or cut the network: virtdev net ${paths.name} none`,
        "Or, knowing that the guest then reaches this host's loopback, set VIRTDEV_NET_BACKEND=slirp and use zone full.",
      ],
    });
  }
  const dir = join(paths.runDir, "net");
  const socket = passtSocketPath(paths);
  return {
    backend: "passt",
    egress,
    filtered: true,
    netdev: `stream,id=net0,server=off,addr.type=unix,addr.path=${escapeOptionValue(join(dir, "vm.sock"))}`,
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
        // The guest's resolver: whatever it is, the filter answers every
        // DNS question itself; this one only makes sure the guest has one
        // (passt hands out none when the host's is on loopback).
        "--dns",
        guestResolverAddress,
        ...passtIsolationOptions(options.passt),
        ...(options.asRoot ? ["--runas", "0:0"] : []),
      ],
      socket,
      dir,
      logFile: join(dir, "passt.log"),
    },
  };
}

/** The resolver address the guest is given; the filter answers DNS sent anywhere. */
export const guestResolverAddress = "169.254.1.53";

/**
 * The longest socket path passt binds whole: it cuts longer ones short
 * (silently, on Debian 12's passt), and QEMU then finds nothing to connect to.
 */
export const passtMaxSocketPath = 98;

/** Where passt's socket goes: short, because of {@link passtMaxSocketPath}. */
export function passtSocketPath(paths: ProjectPaths): string {
  return join(paths.runDir, "net", "sock");
}
