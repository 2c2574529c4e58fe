/**
 * The guest contract: what every virtdev guest provides, defined once.
 * `install --image` applies it to a plain cloud image through cloud-init;
 * the Arch installer (`iso`, `install <iso>`) runs the same pieces as one
 * shell script in the installed system's chroot.
 *
 * - user `dev`: key-only SSH, passwordless sudo, locked passwords;
 * - the home disk (vdb, ext4, `LABEL=home`) mounted at `/home`;
 * - a hardened sshd that uses the per-project host key passed by fw_cfg;
 * - the hostname from fw_cfg `opt/virtdev/project`, set before sshd starts;
 * - a serial getty on ttyS0 that logs `dev` in;
 * - a readiness line on the serial console once sshd is up;
 * - `fstrim.timer`, so discarded blocks return to the host.
 *
 * @module
 */
import { shellQuote } from "../store/shell_quote.ts";

/** The line the guest writes to its serial console when sshd is up. */
export const readinessLine = "VIRTDEV-READY";

/** The line the guest writes instead when sshd failed to start. */
export const notReadyLine = "VIRTDEV-NOT-READY";

/** The line the install boot writes to its serial console once the contract is applied and checked. */
export const installedLine = "VIRTDEV-INSTALLED";

/** Where the guest keeps the host key it receives by fw_cfg. */
export const guestHostKeyPath = "/run/virtdev/ssh_host_ed25519_key";

/** fw_cfg names under `opt/virtdev/`. */
export const fwCfgNames = {
  project: "project",
  hostKey: "host_key",
  hostKeyPublic: "host_key_pub",
  instance: "instance",
} as const;

/** A file the contract puts into the guest. */
export interface GuestFile {
  readonly path: string;
  readonly permissions: string;
  readonly content: string;
}

/** The hardened sshd settings (a drop-in; the distribution's defaults stay below it). */
export const sshdConfig: string = [
  `HostKey ${guestHostKeyPath}`,
  "PubkeyAuthentication yes",
  "AuthenticationMethods publickey",
  "PasswordAuthentication no",
  "KbdInteractiveAuthentication no",
  "KerberosAuthentication no",
  "GSSAPIAuthentication no",
  "HostbasedAuthentication no",
  "PermitRootLogin no",
  "AllowUsers dev",
  "PermitUserEnvironment no",
  "PermitTunnel no",
  // Local forwards only (virtdev forward); nothing from the guest to the host.
  "AllowTcpForwarding local",
  "PermitListen none",
  "GatewayPorts no",
  "AllowAgentForwarding no",
  "AllowStreamLocalForwarding no",
  "X11Forwarding no",
  "UsePAM yes",
  "RequiredRSASize 4096",
  "Ciphers -*-cbc",
  "KexAlgorithms -ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group14-sha256",
  "MACs -hmac-sha1,hmac-sha1-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,umac-64@openssh.com,umac-128@openssh.com,umac-64-etm@openssh.com,umac-128-etm@openssh.com",
  "StrictModes yes",
  "UseDNS no",
  "LogLevel VERBOSE",
  // virtdev's logins share one connection (a resumed VM's): past ssh's default of 10 sessions on it, each further
  // concurrent 'virtdev ssh' or 'run' is refused there, says so on the user's terminal and pays a handshake of its own.
  "MaxSessions 64",
  // A resume leaves the connections of before the suspend dead on the host's side (a new passt knows nothing of
  // them): each kept its sshd and session processes in the guest for TCP's two hours. Unanswered for 30 s, they go.
  "ClientAliveInterval 10",
  "ClientAliveCountMax 3",
  "",
].join("\n");

const _identityScript = `#!/bin/sh
# Sets the hostname and the SSH host key from what the host passed by fw_cfg.
set -eu
base=/sys/firmware/qemu_fw_cfg/by_name/opt/virtdev
[ -d /sys/firmware/qemu_fw_cfg ] || modprobe qemu_fw_cfg 2>/dev/null || true
if [ -r "$base/${fwCfgNames.project}/raw" ]; then
  name=$(tr -cd 'A-Za-z0-9_-' < "$base/${fwCfgNames.project}/raw" | cut -c1-64)
  if [ -n "$name" ]; then
    printf '%s\\n' "$name" > /etc/hostname
    printf '%s' "$name" > /proc/sys/kernel/hostname
    if [ -f /etc/hosts ]; then
      sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts
    else
      printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts
    fi
    printf '127.0.1.1 %s\\n' "$name" >> /etc/hosts
  fi
fi
# New disks (a new project, a clone): a machine-id of their own, for this
# boot's later services and every boot after.
if [ -r "$base/${fwCfgNames.instance}/raw" ]; then
  instance=$(tr -cd 'A-Za-z0-9-' < "$base/${fwCfgNames.instance}/raw" | cut -c1-64)
  if [ -n "$instance" ] && [ "$(cat /var/lib/virtdev/instance 2>/dev/null)" != "$instance" ]; then
    tr -d '-' < /proc/sys/kernel/random/uuid > /etc/machine-id
    install -d -m 755 /var/lib/virtdev
    printf '%s\n' "$instance" > /var/lib/virtdev/instance
  fi
fi
install -d -m 700 /run/virtdev
if [ -r "$base/${fwCfgNames.hostKey}/raw" ]; then
  (umask 077 && cat "$base/${fwCfgNames.hostKey}/raw" > ${guestHostKeyPath})
  if [ -r "$base/${fwCfgNames.hostKeyPublic}/raw" ]; then
    cat "$base/${fwCfgNames.hostKeyPublic}/raw" > ${guestHostKeyPath}.pub
  else
    ssh-keygen -y -f ${guestHostKeyPath} > ${guestHostKeyPath}.pub
  fi
else
  # No key from the host (a maintenance boot): a fresh one for this boot.
  rm -f ${guestHostKeyPath} ${guestHostKeyPath}.pub
  ssh-keygen -q -t ed25519 -N '' -f ${guestHostKeyPath}
fi
`;

/**
 * The distribution family of a guest, where it changes the contract: the
 * name of the SSH server's unit, and whether it is socket-activated.
 * `generic` is a cloud image whose family is not known: every name is
 * covered and its own SSH unit stays as the image enabled it.
 */
export type GuestFlavour = "generic" | "debian" | "ubuntu" | "arch";

/** The SSH units of a flavour: the service, and the socket where sshd is socket-activated. */
export function sshUnits(flavour: GuestFlavour): { readonly services: readonly string[]; readonly socket?: string } {
  switch (flavour) {
    case "debian":
      return { services: ["ssh.service"] };
    // Ubuntu 24.04 and later start sshd from ssh.socket on the first connection.
    case "ubuntu":
      return { services: ["ssh.service"], socket: "ssh.socket" };
    case "arch":
      return { services: ["sshd.service"] };
    case "generic":
      return { services: ["ssh.service", "sshd.service"], socket: "ssh.socket" };
  }
}

// Grows the root and /home file systems into disks the host made bigger
// ('virtdev resize'). It compares the disks' sizes with those of the last
// boot first: without KVM every process costs, and most boots change nothing.
const _growScript = `#!/bin/sh
sizes=$(cat /sys/class/block/vd?/size 2>/dev/null)
[ "$sizes" = "$(cat /var/lib/virtdev/disk-sizes 2>/dev/null)" ] && exit 0
root=$(findmnt -no SOURCE /)
if [ "$(findmnt -no FSTYPE /)" = ext4 ] && [ -b "$root" ]; then
  part=/sys/class/block/$(basename "$root")
  if [ -r "$part/partition" ] && command -v growpart >/dev/null; then
    disk=/dev/$(basename "$(readlink -f "$part/..")")
    growpart "$disk" "$(cat "$part/partition")" >/dev/null 2>&1 || true
  fi
  resize2fs "$root" >/dev/null 2>&1 || true
fi
if [ "$(findmnt -no FSTYPE /home)" = ext4 ]; then
  resize2fs "$(findmnt -no SOURCE /home)" >/dev/null 2>&1 || true
fi
mkdir -p /var/lib/virtdev && printf '%s\n' "$sizes" > /var/lib/virtdev/disk-sizes
`;

const _growUnit = `[Unit]
Description=virtdev: grow the file systems into disks the host made bigger
After=local-fs.target home.mount

[Service]
Type=oneshot
ExecStart=/usr/local/lib/virtdev/grow

[Install]
WantedBy=multi-user.target
`;

/** What a directly booted guest says when its own default kernel is the one it was booted with. */
export const bootSameLine = "VIRTDEV-BOOT-SAME";

/** What it says when its own default kernel is another (updated inside the project): boot it through its firmware. */
export const bootDivergedLine = "VIRTDEV-BOOT-DIVERGED";

// The kernel, initramfs and command line this system boots by default. A
// maintenance or install boot hands them to the host on the export disk
// (at its power-off), for the host to boot projects with directly; a
// directly booted project compares them with what it was booted with.
const _bootFilesScript = `#!/bin/sh
set -u
# A boot through the firmware has nothing to compare: no process more than the shell's.
if [ "\${1:-}" = check ]; then
  read -r cmdline < /proc/cmdline
  case " $cmdline " in *" virtdev.boot="*) ;; *) exit 0 ;; esac
fi
kernel=''
initrd=''
for k in /vmlinuz /boot/vmlinuz-linux; do
  [ -e "$k" ] && { kernel=$(readlink -f "$k"); break; }
done
[ -n "$kernel" ] || kernel=$(printf '%s\\n' /boot/vmlinuz-* | grep -v '\\*$' | sort -V | tail -n 1)
for i in /initrd.img /boot/initramfs-linux.img; do
  [ -e "$i" ] && { initrd=$(readlink -f "$i"); break; }
done
[ -n "$initrd" ] || [ ! -e "/boot/initrd.img-\${kernel#/boot/vmlinuz-}" ] || initrd="/boot/initrd.img-\${kernel#/boot/vmlinuz-}"
identity() { stat -Lc '%n %s %Y' "$kernel" "$initrd" 2>/dev/null; }
check() {
  want=$(sed -n 's/.*virtdev\\.boot=\\([0-9a-f]*\\).*/\\1/p' /proc/cmdline)
  [ -n "$want" ] || return 0
  if [ "$(identity | sha256sum | cut -c1-16)" = "$want" ]; then
    echo ${bootSameLine} > /dev/ttyS0
  else
    echo ${bootDivergedLine} > /dev/ttyS0
  fi
}
export_files() {
  disk=/dev/disk/by-id/virtio-virtdev-boot-export
  [ -b "$disk" ] && [ -n "$kernel" ] && [ -n "$initrd" ] || return 0
  dir=$(mktemp -d)
  ln -s "$kernel" "$dir/vmlinuz"
  ln -s "$initrd" "$dir/initrd"
  sed -e 's/BOOT_IMAGE=[^ ]*//; s/initrd=[^ ]*//; s/virtdev\\.boot=[^ ]*//' /proc/cmdline > "$dir/cmdline"
  identity > "$dir/id"
  tar -chf "$disk" -C "$dir" id cmdline vmlinuz initrd
  sync
  rm -rf "$dir"
}
case "\${1:-}" in
check) check ;;
export) export_files ;;
stop) check; export_files ;;
esac
exit 0
`;

// Active from boot, for its work at power-off: the check (a kernel updated
// meanwhile) and the export when the host attached its disk.
const _bootFilesUnit = `[Unit]
Description=virtdev: the kernel this system boots, for the host
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStop=/usr/local/lib/virtdev/boot-files stop

[Install]
WantedBy=multi-user.target
`;

/** How long after the kernel starts a directly booted guest checks its own kernel against the one it was booted with. */
export const bootCheckDelaySeconds = 30;

// The check at boot, for a guest that ends without a power-off (a crash, a
// kill): it only decides the next boot, so it waits until the host's first
// login is long done. Right after the ready line it took that login 0.3–0.5 s
// under TCG (its seven programs beside sshd on two vCPUs).
const _bootCheckTimer = `[Unit]
Description=virtdev: check this system's own kernel, once the boot is done

[Timer]
OnBootSec=${bootCheckDelaySeconds}s
AccuracySec=1s

[Install]
WantedBy=timers.target
`;

const _bootCheckUnit = `[Unit]
Description=virtdev: whether this system's own kernel is the one it was booted with

[Service]
Type=oneshot
ExecStart=/usr/local/lib/virtdev/boot-files check
`;

function _readyScript(flavour: GuestFlavour): string {
  const { services, socket } = sshUnits(flavour);
  const checks = [...services, ...(socket ? [socket] : [])].map((unit) => `systemctl is-active --quiet ${unit}`);
  return `#!/bin/sh
# Tells the host on the serial console whether sshd came up.
if ${checks.join(" ||\n  ")}; then
  echo ${readinessLine} > /dev/ttyS0
else
  echo ${notReadyLine} > /dev/ttyS0
fi
`;
}

// Not ordered before the network: nothing there needs the hostname, and
// without KVM the network would wait a second or two for it.
const _identityUnit = `[Unit]
Description=virtdev: hostname and SSH host key from fw_cfg
DefaultDependencies=no
After=systemd-modules-load.service local-fs.target
Before=sysinit.target systemd-hostnamed.service ssh.service sshd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/virtdev/identity

[Install]
WantedBy=sysinit.target
`;

function _readyUnit(flavour: GuestFlavour): string {
  const { services, socket } = sshUnits(flavour);
  return `[Unit]
Description=virtdev: tell the host that SSH is up
After=${[...services, ...(socket ? [socket] : [])].join(" ")} home.mount

[Service]
Type=oneshot
ExecStart=/usr/local/lib/virtdev/ready

[Install]
WantedBy=multi-user.target
`;
}

// sshd waits for /home (the keys are there) and needs the identity; if
// either fails it does not start, and the ready unit says NOT-READY.
// Debian's pre-start 'sshd -t' goes: sshd checks its configuration as it
// starts anyway, and the check cost each boot 0.4 s on its way to SSH.
const _sshUnitDropIn = `[Unit]
After=home.mount virtdev-identity.service
Requires=home.mount virtdev-identity.service

[Service]
ExecStartPre=
`;

const _autologin = `[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin dev --noclear %I 115200 linux
`;

/** The files of the contract for a guest of `flavour`. */
export function contractFiles(flavour: GuestFlavour = "generic"): GuestFile[] {
  return [
    { path: "/etc/ssh/sshd_config.d/10-virtdev.conf", permissions: "0644", content: sshdConfig },
    { path: "/etc/modules-load.d/virtdev.conf", permissions: "0644", content: "qemu_fw_cfg\n" },
    { path: "/usr/local/lib/virtdev/identity", permissions: "0755", content: _identityScript },
    { path: "/usr/local/lib/virtdev/ready", permissions: "0755", content: _readyScript(flavour) },
    { path: "/usr/local/lib/virtdev/grow", permissions: "0755", content: _growScript },
    { path: "/usr/local/lib/virtdev/boot-files", permissions: "0755", content: _bootFilesScript },
    { path: "/etc/systemd/system/virtdev-boot-files.service", permissions: "0644", content: _bootFilesUnit },
    { path: "/etc/systemd/system/virtdev-boot-check.timer", permissions: "0644", content: _bootCheckTimer },
    { path: "/etc/systemd/system/virtdev-boot-check.service", permissions: "0644", content: _bootCheckUnit },
    { path: "/etc/systemd/system/virtdev-grow.service", permissions: "0644", content: _growUnit },
    { path: "/etc/systemd/system/virtdev-identity.service", permissions: "0644", content: _identityUnit },
    { path: "/etc/systemd/system/virtdev-ready.service", permissions: "0644", content: _readyUnit(flavour) },
    ...sshUnits(flavour).services.map((service) => ({
      path: `/etc/systemd/system/${service}.d/virtdev.conf`,
      permissions: "0644",
      content: _sshUnitDropIn,
    })),
    {
      path: "/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf",
      permissions: "0644",
      content: _autologin,
    },
    // Read by update-grub (Debian, Ubuntu); elsewhere harmless.
    { path: "/etc/default/grub.d/90-virtdev.cfg", permissions: "0644", content: _grubDefaults },
  ];
}

/**
 * Kernel options for every boot. Under TCG on a busy host the kernel's
 * early IO-APIC timer check can fail and panic the boot ("IO-APIC + timer
 * doesn't work!"); the emulated timer is known good, so the check is skipped.
 */
export const kernelOptions = "no_timer_check";

const _grubDefaults = `GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT ${kernelOptions}"
`;

/**
 * The units the contract enables, after its files are in place. A generic
 * cloud image keeps its SSH unit as the image enabled it; an installer of a
 * known flavour enables its SSH unit (the socket where sshd is
 * socket-activated).
 */
export function contractUnits(flavour: GuestFlavour = "generic"): readonly string[] {
  const { services, socket } = sshUnits(flavour);
  const ssh = flavour === "generic" ? [] : [socket ?? services[0]];
  return [
    "virtdev-identity.service",
    "virtdev-ready.service",
    "virtdev-grow.service",
    "virtdev-boot-files.service",
    "virtdev-boot-check.timer",
    "serial-getty@ttyS0.service",
    "fstrim.timer",
    ...ssh,
  ];
}

// One script, so that the installed line is written only if every step
// and every check succeeded. Files first, then enable: enabling a unit whose
// file is not there yet fails (the original's hostname-unit bug).
function _finishScript(flavour: GuestFlavour, options: { readonly cloudInit: boolean }): string {
  return `passwd -l root
systemctl daemon-reload
systemctl enable ${contractUnits(flavour).join(" ")}
id dev
mountpoint -q /home
test -s /home/dev/.ssh/authorized_keys
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /run/virtdev-check-key
sshd -t -h /run/virtdev-check-key
rm -f /run/virtdev-check-key /run/virtdev-check-key.pub
# Debian's dynamic message of the day (its one script prints uname) costs each SSH login three programs (0.2 s of a
# resume under TCG); pam_motd skips it when the directory is gone.
if [ -d /etc/update-motd.d ]; then rm -f /etc/update-motd.d/10-uname; rmdir /etc/update-motd.d 2>/dev/null || true; fi
if command -v update-grub >/dev/null 2>&1; then update-grub 2>/dev/null || true; fi
${
    // Not from an installer's chroot: its /proc/cmdline is the installer's. Such a base hands its boot files
    // over at its first maintenance boot.
    options.cloudInit ? "/usr/local/lib/virtdev/boot-files export\ntouch /etc/cloud/cloud-init.disabled\n" : ""}sync
echo ${installedLine} > /dev/ttyS0
`;
}

/**
 * The cloud-init user-data that applies the contract at install and then
 * powers the guest off. JSON is valid YAML, so the document is written as
 * JSON and no value ever needs YAML quoting.
 */
export function renderUserData(options: { readonly publicKey: string; readonly timezone: string }): string {
  const document = {
    users: [{
      name: "dev",
      gecos: "virtdev",
      shell: "/bin/bash",
      lock_passwd: true,
      sudo: "ALL=(ALL:ALL) NOPASSWD: ALL",
      ssh_authorized_keys: [options.publicKey.trim()],
    }],
    disable_root: true,
    ssh_pwauth: false,
    timezone: options.timezone,
    locale: "C.UTF-8",
    fs_setup: [{ label: "home", filesystem: "ext4", device: "/dev/vdb", partition: "none", overwrite: false }],
    // A generous device timeout: without KVM, udev can take minutes to label
    // the disk on a busy host, and sshd is useless until /home is there.
    mounts: [["LABEL=home", "/home", "ext4", "defaults,nofail,x-systemd.device-timeout=10min", "0", "2"]],
    write_files: contractFiles().map((file) => ({
      path: file.path,
      permissions: file.permissions,
      content: file.content,
    })),
    // No host keys in the base: each project's comes from the host.
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    runcmd: [["sh", "-ec", _finishScript("generic", { cloudInit: true })]],
    power_state: { mode: "poweroff", condition: true, timeout: 30 },
  };
  return `#cloud-config\n${JSON.stringify(document, null, 2)}\n`;
}

/** The cloud-init meta-data for the install boot. */
export function renderMetaData(options: { readonly instanceId: string }): string {
  return `${JSON.stringify({ "instance-id": options.instanceId, "local-hostname": "virtdev" })}\n`;
}

/** The sudoers line that lets `dev` use sudo without a password. */
const _sudoers = "dev ALL=(ALL:ALL) NOPASSWD: ALL\n";

/**
 * The contract as one `sh -e` script, for an installer that has the new
 * system in a chroot (the Arch installer runs it with arch-chroot): the user
 * `dev` with the key, sudo, the time zone, every contract file (written
 * before any unit is enabled), then the same enable, checks and installed
 * line as the cloud-init path. File contents travel base64-encoded, so no
 * content is ever read by the shell.
 */
export function renderContractScript(options: {
  readonly publicKey: string;
  readonly timezone: string;
  readonly flavour: Exclude<GuestFlavour, "generic">;
}): string {
  const encode = (text: string): string => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const lines = [
    "#!/bin/sh",
    "# The virtdev guest contract, applied inside the installed system.",
    "set -eu",
    "id dev >/dev/null 2>&1 || useradd --create-home --comment virtdev --shell /bin/bash dev",
    "passwd -l dev",
    "install -d -m 700 -o dev -g dev /home/dev/.ssh",
    `printf '%s\\n' ${shellQuote(options.publicKey.trim())} > /home/dev/.ssh/authorized_keys`,
    "chown dev:dev /home/dev/.ssh/authorized_keys && chmod 600 /home/dev/.ssh/authorized_keys",
    "install -d -m 750 /etc/sudoers.d",
    `printf '%s' ${shellQuote(encode(_sudoers))} | base64 -d > /etc/sudoers.d/dev && chmod 440 /etc/sudoers.d/dev`,
    `ln -sf ${shellQuote(`/usr/share/zoneinfo/${options.timezone}`)} /etc/localtime`,
  ];
  for (const file of contractFiles(options.flavour)) {
    const dir = file.path.slice(0, file.path.lastIndexOf("/"));
    lines.push(
      `install -d -m 755 ${shellQuote(dir)}`,
      `printf '%s' ${shellQuote(encode(file.content))} | base64 -d > ${shellQuote(file.path)}`,
      `chmod ${file.permissions} ${shellQuote(file.path)}`,
    );
  }
  lines.push(_finishScript(options.flavour, { cloudInit: false }).trimEnd());
  return `${lines.join("\n")}\n`;
}
