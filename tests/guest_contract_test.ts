import assert from "node:assert/strict";
import {
  bootCheckDelaySeconds,
  contractFiles,
  contractUnits,
  guestHostKeyPath,
  installedLine,
  notReadyLine,
  readinessLine,
  renderMetaData,
  renderUserData,
  sshdConfig,
} from "../src/core/guest/guest_contract.ts";

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx virtdev";

Deno.test("user-data is a cloud-config document that parses as JSON", () => {
  const text = renderUserData({ publicKey: `${key}\n`, timezone: "Europe/Berlin" });
  assert.ok(text.startsWith("#cloud-config\n"));
  const document = JSON.parse(text.slice("#cloud-config\n".length));
  assert.equal(document.users[0].name, "dev");
  assert.equal(document.users[0].lock_passwd, true);
  assert.equal(document.users[0].sudo, "ALL=(ALL:ALL) NOPASSWD: ALL");
  assert.deepEqual(document.users[0].ssh_authorized_keys, [key]);
  assert.equal(document.ssh_pwauth, false);
  assert.equal(document.timezone, "Europe/Berlin");
  assert.equal(document.power_state.mode, "poweroff");
  assert.deepEqual(document.mounts[0].slice(0, 3), ["LABEL=home", "/home", "ext4"]);
  assert.equal(document.fs_setup[0].label, "home");
  assert.equal(document.fs_setup[0].overwrite, false);
});

Deno.test("units are enabled only after their files are written, and cloud-init is disabled for later boots", () => {
  const document = JSON.parse(renderUserData({ publicKey: key, timezone: "UTC" }).replace(/^#cloud-config\n/, ""));
  const written = new Set(document.write_files.map((file: { path: string }) => file.path));
  for (const unit of contractUnits().filter((unit) => unit.startsWith("virtdev-"))) {
    assert.ok(written.has(`/etc/systemd/system/${unit}`), unit);
  }
  const runcmd: string[][] = document.runcmd;
  // One `sh -e` script: the installed line is reached only if every step before it succeeded.
  assert.equal(runcmd.length, 1);
  assert.deepEqual(runcmd[0].slice(0, 2), ["sh", "-ec"]);
  const steps = runcmd[0][2].trim().split("\n");
  const reload = steps.indexOf("systemctl daemon-reload");
  const enable = steps.indexOf(`systemctl enable ${contractUnits().join(" ")}`);
  const disabled = steps.indexOf("touch /etc/cloud/cloud-init.disabled");
  const installed = steps.indexOf(`echo ${installedLine} > /dev/ttyS0`);
  assert.ok(reload !== -1 && reload < enable, "daemon-reload before enable");
  assert.ok(enable < disabled && disabled < installed, "the installed line comes last");
  assert.equal(installed, steps.length - 1);
  for (const check of ["id dev", "mountpoint -q /home", "test -s /home/dev/.ssh/authorized_keys"]) {
    assert.ok(steps.indexOf(check) !== -1 && steps.indexOf(check) < installed, check);
  }
  assert.equal(document.ssh_deletekeys, true);
  assert.deepEqual(document.ssh_genkeytypes, []);
  assert.ok(contractUnits().includes("fstrim.timer"));
});

Deno.test("sshd accepts only keys, only for dev, with the fw_cfg host key; local forwards only", () => {
  for (
    const line of [
      `HostKey ${guestHostKeyPath}`,
      "AuthenticationMethods publickey",
      "PasswordAuthentication no",
      "PermitRootLogin no",
      "AllowUsers dev",
      "AllowTcpForwarding local",
      "PermitListen none",
      "AllowAgentForwarding no",
      "AllowStreamLocalForwarding no",
      "X11Forwarding no",
      "ClientAliveInterval 10",
      "ClientAliveCountMax 3",
    ]
  ) assert.match(sshdConfig, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m"));
});

Deno.test("sshd starts without the pre-start check, and logins without the dynamic message of the day", () => {
  for (const flavour of ["generic", "debian", "arch"] as const) {
    const dropIns = contractFiles(flavour).filter((file) => /\/(ssh|sshd)\.service\.d\/virtdev\.conf$/.test(file.path));
    assert.ok(dropIns.length > 0, flavour);
    for (const file of dropIns) assert.match(file.content, /^\[Service\]\nExecStartPre=\n/m, file.path);
  }
  const document = JSON.parse(renderUserData({ publicKey: key, timezone: "UTC" }).replace(/^#cloud-config\n/, ""));
  assert.match(document.runcmd[0][2], /rm -f \/etc\/update-motd\.d\/10-uname; rmdir \/etc\/update-motd\.d/);
});

Deno.test("a boot checks its own kernel well after the host's first login; every power-off checks and exports", () => {
  const unit = (name: string) => contractFiles().find((file) => file.path === `/etc/systemd/system/${name}`)!.content;
  // Nothing runs at boot for the power-off's unit: its check beside the first login slowed that login by 0.4 s.
  assert.doesNotMatch(unit("virtdev-boot-files.service"), /^ExecStart=/m);
  assert.match(unit("virtdev-boot-files.service"), /^RemainAfterExit=yes$/m);
  assert.match(unit("virtdev-boot-files.service"), /^ExecStop=\/usr\/local\/lib\/virtdev\/boot-files stop$/m);
  assert.match(unit("virtdev-boot-check.timer"), new RegExp(`^OnBootSec=${bootCheckDelaySeconds}s$`, "m"));
  assert.ok(bootCheckDelaySeconds >= 20);
  assert.match(unit("virtdev-boot-check.service"), /^ExecStart=\/usr\/local\/lib\/virtdev\/boot-files check$/m);
  for (const name of ["virtdev-boot-files.service", "virtdev-boot-check.timer"]) {
    assert.ok(contractUnits().includes(name), name);
  }
  assert.ok(!contractUnits().includes("virtdev-boot-check.service"), "started by its timer only");
});

Deno.test("the identity script loads qemu_fw_cfg, reads the project name and the host key", () => {
  const identity = contractFiles().find((file) => file.path.endsWith("/identity"))!;
  assert.equal(identity.permissions, "0755");
  assert.match(identity.content, /modprobe qemu_fw_cfg/);
  assert.match(identity.content, /opt\/virtdev/);
  assert.match(identity.content, /\/proc\/sys\/kernel\/hostname/);
  const readyUnit = contractFiles().find((file) => file.path.endsWith("virtdev-ready.service"))!;
  assert.match(readyUnit.content, /After=ssh\.service sshd\.service/);
  const ready = contractFiles().find((file) => file.path.endsWith("/ready"))!;
  assert.match(ready.content, new RegExp(`echo ${readinessLine} > /dev/ttyS0`));
  assert.match(ready.content, new RegExp(`echo ${notReadyLine} > /dev/ttyS0`));
  assert.match(ready.content, /is-active --quiet ssh\.service/);
});

Deno.test("meta-data names the instance", () => {
  assert.deepEqual(JSON.parse(renderMetaData({ instanceId: "virtdev-1" })), {
    "instance-id": "virtdev-1",
    "local-hostname": "virtdev",
  });
});

Deno.test("every boot skips the kernel's IO-APIC timer check (it panics TCG guests on a busy host)", () => {
  const grub = contractFiles().find((file) => file.path === "/etc/default/grub.d/90-virtdev.cfg");
  assert.equal(grub?.content, 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT no_timer_check"\n');
  assert.match(renderUserData({ publicKey: key, timezone: "UTC" }), /update-grub/);
});
