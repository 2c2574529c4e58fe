/**
 * The QEMU command line of a virtdev VM, as a pure function of its inputs.
 *
 * @module
 */
import { incomingStateFd } from "./qemu_launch.ts";

/** The serial of the boot-export disk; the guest finds it as `/dev/disk/by-id/virtio-<serial>`. */
export const bootExportSerial = "virtdev-boot-export";

/** The longest path a unix socket can have (sun_path holds 108 bytes with the NUL). */
export const maxSocketPath = 107;

/** Everything that decides a VM's QEMU command line. */
export interface VmSpec {
  /** The VM's name: the project, or `maintenance`. */
  readonly name: string;
  /** Hardware acceleration: `kvm`, or software emulation with `tcg`. */
  readonly accel: "kvm" | "tcg";
  /** Guest memory in MiB. */
  readonly memoryMiB: number;
  /** Guest CPUs. */
  readonly cpus: number;
  /** UEFI code (read-only) and this VM's variable store. */
  readonly firmware: { readonly code: string; readonly nvram: string };
  /** The system and home disks (qcow2). */
  readonly disks: { readonly system: string; readonly home: string };
  /** QEMU's `-netdev` value for `net0` (see `network.ts`); plain user networking when absent. */
  readonly netdev?: string;
  /**
   * The monitor sockets, when the VM runs in the background under the host
   * agent, which then holds the serial console on QEMU's stdio.
   */
  readonly runtime?: {
    readonly monitorSocket: string;
    readonly qmpSocket: string;
  };
  /**
   * A QMP socket to watch the run state on (the host agent's, or install's):
   * a kernel panic then pauses QEMU (pvpanic) so that the watcher can tell
   * why the guest stopped, and a KVM internal error or a full host disk
   * pauses it by QEMU's own doing.
   */
  readonly eventSocket?: string;
  /** Strings and files passed to the guest through fw_cfg, by name under `opt/virtdev/`. */
  readonly fwCfg?: readonly FwCfgItem[];
  /** An installer ISO, as a read-only CD (the install boot from `iso`). */
  readonly cdrom?: string;
  /** SMBIOS type-1 serial (cloud-init reads its NoCloud seed location from it). */
  readonly smbiosSerial?: string;
  /** Without `runtime`: a file that receives the serial console (else stdio). */
  readonly serialLog?: string;
  /** Exit instead of rebooting (the install boot must end, not loop). */
  readonly noReboot?: boolean;
  /**
   * For the maintenance VM: a guest power-off pauses QEMU instead of ending
   * it, so that the host agent sees it on the event socket before QEMU
   * exits.
   */
  readonly pauseOnPowerOff?: boolean;
  /**
   * A suspended state to load (`suspend.ts`) instead of booting: QEMU
   * reads it from a descriptor its launch opens (`qemu_launch.ts`), and
   * waits, paused, for `cont` once it is loaded.
   */
  readonly incoming?: string;
  /**
   * Boot this kernel directly (SeaBIOS loads it; no UEFI firmware, no boot
   * loader): the base's kept boot files (`direct_boot.ts`).
   */
  readonly directKernel?: { readonly kernel: string; readonly initrd: string; readonly append: string };
  /** A raw disk the guest writes its boot files onto at power-off (install and maintenance boots). */
  readonly exportDisk?: string;
}

/** One fw_cfg item. */
export type FwCfgItem =
  | { readonly name: string; readonly string: string }
  | { readonly name: string; readonly file: string };

/** Escapes a value for a comma-separated QEMU option (`,` becomes `,,`). */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** The arguments after `qemu-system-x86_64` for `spec`. */
export function qemuArguments(spec: VmSpec): string[] {
  const e = escapeOptionValue;
  const args = [
    "-name",
    `${e(spec.name)},process=virtdev-${e(spec.name)}`,
    "-machine",
    `q35,accel=${spec.accel}`,
    "-cpu",
    spec.accel === "kvm" ? "host" : "max",
    "-m",
    String(spec.memoryMiB),
    "-smp",
    String(spec.cpus),
    "-nodefaults",
    "-display",
    "none",
    ...(spec.directKernel
      ? [
        "-kernel",
        spec.directKernel.kernel,
        "-initrd",
        spec.directKernel.initrd,
        "-append",
        spec.directKernel.append,
      ]
      : [
        "-drive",
        `if=pflash,format=raw,readonly=on,file=${e(spec.firmware.code)}`,
        "-drive",
        `if=pflash,format=raw,file=${e(spec.firmware.nvram)}`,
      ]),
    "-drive",
    `file=${e(spec.disks.system)},if=virtio,format=qcow2,discard=unmap`,
    "-drive",
    `file=${e(spec.disks.home)},if=virtio,format=qcow2,discard=unmap`,
    // The serial names it in the guest (/dev/disk/by-id/virtio-<serial>); QEMU takes it on the device. An
    // explicit -device is created before the ones -drive if=virtio makes, so it would take the first PCI slot
    // and become vda: the last free slot keeps the system and home disks vda and vdb.
    ...(spec.exportDisk === undefined ? [] : [
      "-drive",
      `file=${e(spec.exportDisk)},if=none,id=bootexport,format=raw`,
      "-device",
      `virtio-blk-pci,drive=bootexport,serial=${bootExportSerial},addr=0x1e`,
    ]),
    ...(spec.cdrom === undefined ? [] : ["-drive", `file=${e(spec.cdrom)},media=cdrom,readonly=on`]),
    "-netdev",
    spec.netdev ?? "user,id=net0",
    // No option ROM: nothing boots from the network, and under SeaBIOS its iPXE costs about half a second.
    "-device",
    "virtio-net-pci,netdev=net0,romfile=",
    "-device",
    "virtio-rng-pci",
    "-device",
    "virtio-balloon-pci,free-page-reporting=on",
  ];
  if (spec.runtime) {
    const r = spec.runtime;
    args.push(
      "-chardev",
      `socket,id=monitor,path=${e(r.monitorSocket)},server=on,wait=off`,
      "-mon",
      "chardev=monitor,mode=readline",
      "-chardev",
      `socket,id=qmp,path=${e(r.qmpSocket)},server=on,wait=off`,
      "-mon",
      "chardev=qmp,mode=control",
      "-chardev",
      "stdio,id=serial,signal=off",
      "-serial",
      "chardev:serial",
    );
  } else if (spec.serialLog !== undefined) {
    args.push("-chardev", `file,id=serial,path=${e(spec.serialLog)}`, "-serial", "chardev:serial", "-monitor", "none");
  } else {
    args.push("-serial", "stdio", "-monitor", "none");
  }
  if (spec.eventSocket !== undefined) {
    args.push(
      "-chardev",
      `socket,id=qmpwatch,path=${e(spec.eventSocket)},server=on,wait=off`,
      "-mon",
      "chardev=qmpwatch,mode=control",
      "-action",
      "panic=pause",
      "-device",
      "pvpanic",
    );
  }
  if (spec.noReboot) args.push("-no-reboot");
  if (spec.pauseOnPowerOff) args.push("-no-shutdown");
  for (const item of spec.fwCfg ?? []) {
    const value = "string" in item ? `string=${e(item.string)}` : `file=${e(item.file)}`;
    args.push("-fw_cfg", `name=opt/virtdev/${e(item.name)},${value}`);
  }
  // The state comes on a descriptor the launch opens (qemu_launch.ts): the path is not in QEMU's arguments.
  if (spec.incoming !== undefined) args.push("-S", "-incoming", `fd:${incomingStateFd}`);
  if (spec.smbiosSerial !== undefined) args.push("-smbios", `type=1,serial=${e(spec.smbiosSerial)}`);
  return args;
}
