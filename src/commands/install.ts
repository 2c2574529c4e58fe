import { defineCommand, valueOption } from "../cli/spec.ts";
import { withLock } from "../cli/locked.ts";
import { UsageError } from "../core/store/errors.ts";
import { installBase, InstallExit, type InstallSource, type InstallStage } from "../core/base/install.ts";
import { isoPath } from "../core/base/iso.ts";
import { parseSize } from "../core/store/size.ts";
import { resolveAccel } from "../core/vm/vm_lifecycle.ts";
import { type Stage, startStage } from "../ui/progress.ts";

const _stageLabels: Readonly<Record<InstallStage, string>> = {
  copy: "Copying and resizing the image",
  home: "Creating the home disk",
  boot: "Booting the install VM (waiting for cloud-init to fetch its seed)",
  contract: "Applying the guest contract (cloud-init)",
  poweroff: "Powering off",
};

const _isoLabels: Readonly<Record<InstallStage, string>> = {
  copy: "Creating the system disk",
  home: "Creating the home disk",
  boot: "Booting the Arch installer (partitions, pacstrap, guest contract)",
  contract: "Applying the guest contract",
  poweroff: "Powering off",
};

/** `virtdev install --image <file> | [iso] [--home-size N]`: builds the installation. */
export const installCommand = defineCommand("install", {
  brief: `Install the base from a cloud image (--image) or the Arch installer ISO; then run 'virtdev seal'.`,
  description:
    `With --image: copies the image, grows it to VIRTDEV_SYSTEM_DISK_SIZE, makes the home disk and boots it once with a cloud-init seed that virtdev serves on loopback; the guest applies the virtdev contract (user dev, your key, hardened sshd, /home on its own disk) and powers off. Works with Debian, Ubuntu, Fedora and Arch cloud images. Without it: boots the ISO that 'virtdev iso' built (or the one named), whose unattended installer partitions and pacstraps both disks and applies the same contract.`,
  options: {
    image: valueOption(["--image"], "FILE", `A cloud image.`),
    homeSize: valueOption(["--home-size"], "SIZE", `Size of the home disk, e.g. 48G (default VIRTDEV_HOME_DISK_SIZE).`),
  },
  positionals: {
    iso: { metavar: "ISO", description: `The installer ISO (default: the one 'iso' built).`, optional: true },
  },
  async run({ iso, image, homeSize }, context) {
    const { ui, store, config } = context;
    if (iso !== undefined && image !== undefined) throw new UsageError("Give an ISO or --image, not both.");
    const source: InstallSource = image !== undefined ? { image } : { iso: iso ?? isoPath(config) };
    const labels = "image" in source ? _stageLabels : _isoLabels;
    let homeBytes: number | undefined;
    try {
      homeBytes = homeSize === undefined ? undefined : parseSize(homeSize);
    } catch (error) {
      throw new UsageError(`--home-size: ${(error as Error).message}`);
    }
    const result = await withLock(context, "install", async () => {
      const accel = await resolveAccel(config, ui, { kvmUnusableExit: InstallExit.qemuFailed });
      let current: Stage | undefined;
      return await installBase(store, source, {
        config,
        accel,
        homeSize: homeBytes,
        progress: {
          info: (line) => ui.info(line),
          warn: (line) => ui.warn(line),
          stage(stage) {
            current?.done();
            current = startStage(ui, labels[stage]);
          },
          failed(tail) {
            current?.fail();
            current = undefined;
            if (tail.length === 0) return;
            ui.info(`Last ${tail.length} console lines:`);
            for (const line of tail) ui.info(`  | ${line}`);
          },
        },
      }).finally(() => current?.done());
    });
    ui.success(`Installer finished in ${result.seconds.toFixed(0)}s.`);
    ui.info(`Console log: ${result.consoleLog}`);
    ui.info("Next: virtdev seal");
  },
});
