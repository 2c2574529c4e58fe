#!/usr/bin/env bash
# Builds a generic Debian bookworm cloud-style test image (UEFI, systemd-boot,
# GPT, cloud-init) without loop devices or mounts. It knows nothing of
# virtdev: `virtdev install --image` applies the guest contract to it.
#
# Usage: scripts/build_test_guest.sh [OUTPUT_DIR]
# Prints the image path. The result is cached by a hash of this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$here/build_test_guest.sh" | cut -c1-16)
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/virtdev-test-guest/$hash}
image=$out/debian-bookworm-cloud.qcow2
if [[ -s $image ]]; then echo "$image"; exit 0; fi

for tool in debootstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk qemu-img; do
  command -v "$tool" >/dev/null || { echo "build_test_guest: $tool is missing" >&2; exit 69; }
done
[[ -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ]] || { echo "build_test_guest: systemd-boot-efi is missing" >&2; exit 69; }

work=$(mktemp -d "${TMPDIR:-/tmp}/virtdev-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
log() { echo "build_test_guest: $*" >&2; }

log "debootstrap (about a minute)"
debootstrap --variant=minbase \
  --include=linux-image-cloud-amd64,systemd-sysv,udev,openssh-server,sudo,rsync,iproute2,dbus,kmod,e2fsprogs,ca-certificates,procps,zstd,initramfs-tools \
  bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

log "cloud-init"
# cloud-init's Python stack fails to configure inside debootstrap's second
# stage; apt in the finished chroot installs it cleanly.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
{ chroot "$root" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$root" \
  apt-get install -y -qq --no-install-recommends cloud-init cloud-guest-utils; } >"$work/cloud-init.log" 2>&1 ||
  { tail -20 "$work/cloud-init.log" >&2; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"

log "configure"
# A network configuration that does not depend on the MAC address, and
# cloud-init limited to NoCloud without network rendering.
mkdir -p "$root/etc/systemd/network" "$root/etc/cloud/cloud.cfg.d"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/20-dhcp.network"
printf 'datasource_list: [NoCloud, None]\nnetwork: {config: disabled}\nssh_genkeytypes: [ed25519]\nlocale: C.UTF-8\n' \
  >"$root/etc/cloud/cloud.cfg.d/90-test-guest.cfg"
chroot "$root" systemctl enable systemd-networkd serial-getty@ttyS0.service >/dev/null 2>&1
chroot "$root" systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
chroot "$root" systemctl mask getty@tty1.service >/dev/null 2>&1
# Housekeeping a throw-away test guest never needs; without KVM it costs seconds of every boot.
chroot "$root" systemctl disable e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer \
  dpkg-db-backup.timer >/dev/null 2>&1 || true
: >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
echo "debian" >"$root/etc/hostname"
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/virtdev.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\nvirtio_scsi\nvirtio_rng\next4\n' >>"$root/etc/initramfs-tools/modules"
kernel=$(basename "$(ls "$root"/boot/vmlinuz-* | tail -1)")
version=${kernel#vmlinuz-}
chroot "$root" update-initramfs -u -k "$version" >/dev/null 2>&1
rm -rf "$root"/usr/share/{doc,man,locale}/* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

log "disk"
root_uuid=5c4f7a1e-0b7e-4c3a-9d4e-2f1a6b8c9d01
esp=$work/esp.img rootimg=$work/root.img disk=$work/disk.raw
truncate -s 64M "$esp" && mkfs.vfat -F 32 -n ESP "$esp" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$root/boot/vmlinuz-$version" ::/vmlinuz
mcopy -i "$esp" "$root/boot/initrd.img-$version" ::/initrd.img
printf 'timeout 0\ndefault debian.conf\n' >"$work/loader.conf"
# no_timer_check: under TCG on a busy host the kernel's IO-APIC timer check can fail and panic the boot
# (seen in CI with two lanes of guests on two cores); virtdev's own installs set it too (guest_contract.ts).
printf 'title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=%s rw console=ttyS0,115200n8 quiet tsc=reliable clocksource=tsc no_timer_check\n' \
  "$root_uuid" >"$work/debian.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/debian.conf" ::/loader/entries/debian.conf
mkfs.ext4 -q -L root -d "$root" "$rootimg" 2G >&2
truncate -s 2200M "$disk"
sfdisk -q "$disk" <<SFDISK
label: gpt
label-id: 2E0C8D55-7C0B-4C44-9E4E-6C3D1F0A9B10
start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=7D1C3E4A-5B6F-4A7B-8C9D-0E1F2A3B4C5D
start=133120, size=4194304, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$root_uuid
SFDISK
dd if="$esp" of="$disk" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if="$rootimg" of="$disk" bs=512 seek=133120 conv=notrunc,sparse status=none
mkdir -p "$out"
qemu-img convert -O qcow2 -c -o compression_type=zstd "$disk" "$image.tmp"
mv "$image.tmp" "$image"
log "done: $image"
echo "$image"
