/**
 * The Arch installer ISO: an archiso profile made from the host's `releng`
 * profile plus virtdev's overlay, which lives here as data (a compiled
 * binary has no loose files). The live system runs one unattended unit:
 * it partitions and formats the two disks, pacstraps the system, installs
 * systemd-boot with a serial console, runs the guest contract script
 * (`renderContractScript`, the same definition `install --image` applies
 * through cloud-init) in the new system's chroot, and powers off.
 *
 * @module
 */
import { shellQuote } from "../store/shell_quote.ts";
import { join } from "../store/path.ts";
import { ensurePrivateDirectory } from "../store/file_modes.ts";
import { runTool } from "../store/process.ts";
import { kernelOptions, renderContractScript } from "../guest/guest_contract.ts";

/** One file or link of the overlay, by its path inside the profile. */
export type ProfileEntry =
  | { readonly path: string; readonly content: string; readonly mode: number }
  | { readonly path: string; readonly symlink: string };

/** What the profile is rendered from. */
export interface ProfileInputs {
  readonly publicKey: string;
  readonly timezone: string;
  readonly locale: string;
  readonly keymap: string;
  /** The profile's version, for the ISO's name. */
  readonly version: string;
}

/** The packages pacstrap installs. */
export const installedPackages: readonly string[] = [
  "base",
  "linux",
  "openssh",
  "sudo",
  "rsync",
  "e2fsprogs",
  "dosfstools",
  "git",
  "vim",
  "less",
  "curl",
  "which",
  "man-db",
  "base-devel",
];

/** The packages the live ISO adds to releng's list. */
export const livePackages: readonly string[] = ["arch-install-scripts", "dosfstools", "e2fsprogs", "util-linux"];

const _installer = (inputs: ProfileInputs) =>
  `#!/usr/bin/env bash
# virtdev's unattended Arch install: /dev/vda is the system disk, /dev/vdb
# the home disk. Success is the guest contract's installed line on ttyS0,
# then a power-off; on any failure the live system stays up for a look.
set -euo pipefail
system=/dev/vda
home=/dev/vdb
for disk in "$system" "$home"; do
  [[ -b $disk ]] || { echo "virtdev-install: $disk is missing" >&2; exit 1; }
done

# ESP (512 MiB) and root on the system disk; one ext4 labelled home on the home disk.
sfdisk --wipe always "$system" <<'LAYOUT'
label: gpt
size=512MiB, type=uefi, name=esp
type=linux, name=root
LAYOUT
sfdisk --wipe always "$home" <<'LAYOUT'
label: gpt
type=linux, name=home
LAYOUT
udevadm settle
mkfs.fat -F 32 -n ESP "\${system}1"
mkfs.ext4 -q -F -L root "\${system}2"
mkfs.ext4 -q -F -L home "\${home}1"

mount "\${system}2" /mnt
mount --mkdir "\${system}1" /mnt/efi
mount --mkdir LABEL=home /mnt/home

pacstrap -K /mnt ${installedPackages.join(" ")}
genfstab -L /mnt > /mnt/etc/fstab

printf '%s\\n' ${shellQuote(`LANG=${inputs.locale}`)} > /mnt/etc/locale.conf
printf '%s\\n' ${shellQuote(`${inputs.locale} ${inputs.locale.split(".")[1] ?? "UTF-8"}`)} >> /mnt/etc/locale.gen
printf '%s\\n' ${shellQuote(`KEYMAP=${inputs.keymap}`)} > /mnt/etc/vconsole.conf
arch-chroot /mnt locale-gen

# Networking for every later boot: DHCP on the virtio NIC.
install -d /mnt/etc/systemd/network
cp /etc/systemd/network/20-virtdev.network /mnt/etc/systemd/network/
arch-chroot /mnt systemctl enable systemd-networkd.service systemd-resolved.service

# systemd-boot with the serial console.
arch-chroot /mnt bootctl --esp-path=/efi install
root_uuid=$(blkid -s UUID -o value "\${system}2")
[[ -n $root_uuid ]] || { echo "virtdev-install: no UUID for the root file system" >&2; exit 2; }
install -d /mnt/efi/loader/entries
cat > /mnt/efi/loader/loader.conf <<'LOADER'
default arch.conf
timeout 0
editor no
LOADER
cat > /mnt/efi/loader/entries/arch.conf <<ENTRY
title Arch Linux (virtdev)
linux /vmlinuz-linux
initrd /initramfs-linux.img
options root=UUID=$root_uuid rw console=tty0 console=ttyS0,115200 ${kernelOptions}
ENTRY
cp /mnt/boot/vmlinuz-linux /mnt/boot/initramfs-linux.img /mnt/efi/

# The guest contract, the same one 'install --image' applies: it ends with
# the installed line on ttyS0 only if every step and check passed.
arch-chroot /mnt sh -e < /root/virtdev/contract.sh
sync
umount -R /mnt
systemctl poweroff
`;

const _installUnit = `[Unit]
Description=virtdev: unattended Arch install
After=network-online.target
Wants=network-online.target
ConditionPathExists=!/root/virtdev/disable

[Service]
Type=oneshot
ExecStart=/root/virtdev/install.sh
StandardOutput=journal+console
TimeoutStartSec=1800

[Install]
WantedBy=multi-user.target
`;

const _network = `[Match]
Name=en*

[Network]
DHCP=yes
`;

/** virtdev's overlay over releng. */
export function renderProfileOverlay(inputs: ProfileInputs): ProfileEntry[] {
  return [
    {
      path: "profiledef.sh",
      mode: 0o644,
      content: `#!/usr/bin/env bash
# shellcheck disable=SC2034
iso_name="virtdev"
iso_label="VIRTDEV"
iso_publisher="virtdev"
iso_application="virtdev unattended Arch installer"
iso_version=${shellQuote(inputs.version)}
install_dir="arch"
buildmodes=('iso')
bootmodes=('uefi.systemd-boot.esp' 'uefi.systemd-boot.eltorito')
arch="x86_64"
pacman_conf="pacman.conf"
airootfs_image_type="squashfs"
airootfs_image_tool_options=('-comp' 'xz' '-Xbcj' 'x86' '-b' '1M' '-Xdict-size' '1M')
file_permissions=(
  ["/etc/shadow"]="0:0:400"
  ["/root"]="0:0:750"
  ["/root/virtdev"]="0:0:700"
  ["/root/virtdev/install.sh"]="0:0:755"
  ["/root/virtdev/contract.sh"]="0:0:600"
)
`,
    },
    {
      path: "efiboot/loader/loader.conf",
      mode: 0o644,
      content: "timeout 0\ndefault virtdev.conf\n",
    },
    {
      path: "efiboot/loader/entries/virtdev.conf",
      mode: 0o644,
      content: `title virtdev unattended Arch install
sort-key 01
linux /%INSTALL_DIR%/boot/x86_64/vmlinuz-linux
initrd /%INSTALL_DIR%/boot/x86_64/initramfs-linux.img
options archisobasedir=%INSTALL_DIR% archisosearchuuid=%ARCHISO_UUID% console=tty0 console=ttyS0,115200
`,
    },
    { path: "airootfs/root/virtdev/install.sh", mode: 0o755, content: _installer(inputs) },
    {
      path: "airootfs/root/virtdev/contract.sh",
      mode: 0o600,
      content: renderContractScript({ publicKey: inputs.publicKey, timezone: inputs.timezone, flavour: "arch" }),
    },
    { path: "airootfs/etc/systemd/system/virtdev-install.service", mode: 0o644, content: _installUnit },
    {
      path: "airootfs/etc/systemd/system/multi-user.target.wants/virtdev-install.service",
      symlink: "/etc/systemd/system/virtdev-install.service",
    },
    { path: "airootfs/etc/systemd/network/20-virtdev.network", mode: 0o644, content: _network },
    // Nobody logs into the live installer over the network.
    { path: "airootfs/etc/ssh/sshd_config.d/10-virtdev-live.conf", mode: 0o644, content: "AllowUsers nobody-at-all\n" },
  ];
}

/**
 * Writes the profile into `target`: a copy of `releng` without its GRUB,
 * syslinux and boot entries, virtdev's overlay over it, and virtdev's live
 * packages added to releng's list.
 */
export async function writeProfile(releng: string, target: string, inputs: ProfileInputs): Promise<void> {
  await ensurePrivateDirectory(target);
  await runTool("cp", ["-a", "--", `${releng}/.`, target]);
  for (const dir of ["grub", "syslinux", "efiboot/loader/entries"]) {
    await Deno.remove(join(target, dir), { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  const packagesPath = join(target, "packages.x86_64");
  const releases = await Deno.readTextFile(packagesPath).catch(() => "");
  const listed = new Set(releases.split("\n").map((line) => line.trim()));
  const added = livePackages.filter((name) => !listed.has(name));
  await Deno.writeTextFile(packagesPath, `${releases.replace(/\n?$/, "\n")}${added.map((p) => `${p}\n`).join("")}`);
  for (const entry of renderProfileOverlay(inputs)) {
    const path = join(target, entry.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.remove(path).catch(() => {});
    if ("symlink" in entry) await Deno.symlink(entry.symlink, path);
    else await Deno.writeTextFile(path, entry.content, { mode: entry.mode });
  }
}
