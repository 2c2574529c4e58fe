/**
 * The Arch installer path, covered by render tests only: no Arch mirror
 * (and no archiso) is reachable here, so the ISO is never built or booted.
 * The profile is rendered over a stand-in for archiso's releng profile and
 * every script, unit and contract file is checked. Also: the contract's
 * differences between Arch, Ubuntu and Debian guests.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSandbox, virtdev } from "./_helpers.ts";
import { renderProfileOverlay, writeProfile } from "../src/core/base/archiso_profile.ts";
import {
  contractFiles,
  contractUnits,
  installedLine,
  renderContractScript,
  sshUnits,
} from "../src/core/guest/guest_contract.ts";

const inputs = {
  publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx virtdev",
  timezone: "Europe/Berlin",
  locale: "de_DE.UTF-8",
  keymap: "de-latin1",
  version: "2.0.0",
};

async function syntaxCheck(shell: string, path: string): Promise<void> {
  const output = await new Deno.Command(shell, { args: ["-n", path], stderr: "piped" }).output();
  assert.equal(output.code, 0, `${shell} -n ${path}: ${new TextDecoder().decode(output.stderr)}`);
}

/** A stand-in for /usr/share/archiso/configs/releng, with the parts virtdev removes or extends. */
async function fakeReleng(dir: string): Promise<void> {
  for (const sub of ["grub", "syslinux", "efiboot/loader/entries", "airootfs/etc"]) {
    await Deno.mkdir(join(dir, sub), { recursive: true });
  }
  await Deno.writeTextFile(join(dir, "profiledef.sh"), "#!/usr/bin/env bash\niso_name=archlinux\n");
  await Deno.writeTextFile(join(dir, "packages.x86_64"), "base\nlinux\nmkinitcpio-archiso\ndosfstools\n");
  await Deno.writeTextFile(join(dir, "pacman.conf"), "[options]\n");
  await Deno.writeTextFile(join(dir, "grub/grub.cfg"), "menuentry\n");
  await Deno.writeTextFile(join(dir, "syslinux/syslinux.cfg"), "DEFAULT arch\n");
  await Deno.writeTextFile(join(dir, "efiboot/loader/entries/01-archiso-x86_64-linux.conf"), "title Arch\n");
  await Deno.writeTextFile(join(dir, "airootfs/etc/hostname"), "archiso\n");
}

Deno.test("the Arch profile renders over releng (stubbed: no archiso here): scripts parse, units and contract files are there", async () => {
  await using sandbox = await makeSandbox();
  const releng = join(sandbox.root, "releng");
  const profile = join(sandbox.root, "profile");
  await fakeReleng(releng);
  await writeProfile(releng, profile, inputs);

  for (const gone of ["grub", "syslinux", "efiboot/loader/entries/01-archiso-x86_64-linux.conf"]) {
    await assert.rejects(Deno.lstat(join(profile, gone)), Deno.errors.NotFound, gone);
  }
  assert.equal(await Deno.readTextFile(join(profile, "airootfs/etc/hostname")), "archiso\n", "releng is kept");
  const packages = (await Deno.readTextFile(join(profile, "packages.x86_64"))).split("\n");
  assert.ok(packages.includes("mkinitcpio-archiso") && packages.includes("arch-install-scripts"));
  assert.equal(packages.filter((p) => p === "dosfstools").length, 1, "no package twice");

  const profiledef = await Deno.readTextFile(join(profile, "profiledef.sh"));
  assert.match(profiledef, /bootmodes=\('uefi\.systemd-boot\.esp' 'uefi\.systemd-boot\.eltorito'\)/);
  assert.doesNotMatch(profiledef, /bios/);
  const entry = await Deno.readTextFile(join(profile, "efiboot/loader/entries/virtdev.conf"));
  assert.match(entry, /console=ttyS0,115200/);
  assert.match(await Deno.readTextFile(join(profile, "efiboot/loader/loader.conf")), /default virtdev\.conf/);

  // Every shell script parses.
  const scripts = ["profiledef.sh", "airootfs/root/virtdev/install.sh"];
  for (const script of scripts) await syntaxCheck("bash", join(profile, script));
  await syntaxCheck("sh", join(profile, "airootfs/root/virtdev/contract.sh"));
  await syntaxCheck("bash", join(profile, "airootfs/root/virtdev/contract.sh"));
  assert.equal((await Deno.stat(join(profile, "airootfs/root/virtdev/install.sh"))).mode! & 0o777, 0o755);
  assert.equal((await Deno.stat(join(profile, "airootfs/root/virtdev/contract.sh"))).mode! & 0o777, 0o600);

  // The installer unit is there and enabled by a link to it.
  const unit = await Deno.readTextFile(join(profile, "airootfs/etc/systemd/system/virtdev-install.service"));
  assert.match(unit, /ExecStart=\/root\/virtdev\/install\.sh/);
  const wants = join(profile, "airootfs/etc/systemd/system/multi-user.target.wants/virtdev-install.service");
  assert.equal(await Deno.readLink(wants), "/etc/systemd/system/virtdev-install.service");

  const install = await Deno.readTextFile(join(profile, "airootfs/root/virtdev/install.sh"));
  assert.match(install, /^set -euo pipefail$/m);
  assert.match(install, /mkfs\.ext4 -q -F -L home "\$\{home\}1"/);
  assert.match(install, /pacstrap -K \/mnt base linux openssh sudo/);
  assert.match(install, /options root=UUID=\$root_uuid rw console=tty0 console=ttyS0,115200 no_timer_check$/m);
  assert.match(install, /KEYMAP=de-latin1/);
  assert.match(install, /LANG=de_DE\.UTF-8/);
  const contractRun = install.indexOf("arch-chroot /mnt sh -e < /root/virtdev/contract.sh");
  assert.ok(contractRun > install.indexOf("pacstrap"), "the contract runs in the installed system");
  assert.ok(install.indexOf("systemctl poweroff") > contractRun, "power-off only after the contract");
});

Deno.test("the contract script writes every contract file before it enables a unit, and ends with the installed line", () => {
  const script = renderContractScript({ publicKey: inputs.publicKey, timezone: inputs.timezone, flavour: "arch" });
  const lines = script.trimEnd().split("\n");
  const enable = lines.findIndex((line) => line.startsWith("systemctl enable "));
  assert.ok(enable > 0);
  for (const file of contractFiles("arch")) {
    const written = lines.findIndex((line) => line.endsWith(`base64 -d > '${file.path}'`));
    assert.ok(written !== -1 && written < enable, `${file.path} is written before the enable`);
    // The content survives the trip through base64.
    const encoded = /printf '%s' '([A-Za-z0-9+/=]+)'/.exec(lines[written])![1];
    assert.equal(new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0))), file.content);
  }
  for (const unit of contractUnits("arch").filter((unit) => unit.startsWith("virtdev-"))) {
    assert.ok(contractFiles("arch").some((file) => file.path === `/etc/systemd/system/${unit}`), unit);
  }
  assert.equal(lines.at(-1), `echo ${installedLine} > /dev/ttyS0`);
  assert.match(script, /authorized_keys/);
  assert.match(script, /\/usr\/share\/zoneinfo\/Europe\/Berlin/);
  assert.doesNotMatch(script, /cloud-init/, "no cloud-init on the installer path");
  // The key is quoted for the shell even when it holds a quote.
  const quoted = renderContractScript({ publicKey: "ssh-ed25519 AAA it's", timezone: "UTC", flavour: "arch" });
  assert.match(quoted, /'ssh-ed25519 AAA it'\\''s'/);
});

Deno.test("Arch, Ubuntu and Debian guests differ in their SSH unit: sshd.service, socket-activated ssh, ssh.service", () => {
  assert.deepEqual(sshUnits("arch"), { services: ["sshd.service"] });
  const arch = contractFiles("arch").map((file) => file.path);
  assert.ok(arch.includes("/etc/systemd/system/sshd.service.d/virtdev.conf"));
  assert.ok(!arch.includes("/etc/systemd/system/ssh.service.d/virtdev.conf"));
  assert.ok(contractUnits("arch").includes("sshd.service"));
  const archReady = contractFiles("arch").find((file) => file.path.endsWith("/ready"))!.content;
  assert.match(archReady, /is-active --quiet sshd\.service/);
  assert.doesNotMatch(archReady, /ssh\.socket|ssh\.service/);

  assert.equal(sshUnits("ubuntu").socket, "ssh.socket");
  assert.ok(contractUnits("ubuntu").includes("ssh.socket"), "Ubuntu enables the socket, not the service");
  assert.ok(!contractUnits("ubuntu").includes("ssh.service"));
  const ubuntuReady = contractFiles("ubuntu").find((file) => file.path.endsWith("/ready"))!.content;
  assert.match(ubuntuReady, /is-active --quiet ssh\.socket/);
  const ubuntuReadyUnit = contractFiles("ubuntu").find((file) => file.path.endsWith("virtdev-ready.service"))!;
  assert.match(ubuntuReadyUnit.content, /After=ssh\.service ssh\.socket home\.mount/);

  assert.ok(contractUnits("debian").includes("ssh.service"));
  // A cloud image of unknown family: every name is covered, its own SSH unit is left alone.
  const generic = contractFiles().map((file) => file.path);
  assert.ok(generic.includes("/etc/systemd/system/ssh.service.d/virtdev.conf"));
  assert.ok(generic.includes("/etc/systemd/system/sshd.service.d/virtdev.conf"));
  assert.ok(!contractUnits().some((unit) => unit.startsWith("ssh")));
});

Deno.test("iso without archiso exits 69 naming the package; install of a missing ISO exits 3", async () => {
  await using sandbox = await makeSandbox();
  assert.equal((await virtdev(sandbox, ["key"])).code, 0);
  const iso = await virtdev(sandbox, ["iso"]);
  assert.equal(iso.code, 69, iso.stderr);
  assert.match(iso.stderr, /mkarchiso is not installed/);
  assert.match(iso.stderr, /pacman -S archiso/);
  const install = await virtdev(sandbox, ["install"]);
  assert.equal(install.code, 3, install.stderr);
  assert.match(install.stderr, /Installer ISO not found: .*virtdev\.iso/);
  const both = await virtdev(sandbox, ["install", "x.iso", "--image", "y.qcow2"]);
  assert.equal(both.code, 64, both.stderr);
  assert.equal(renderProfileOverlay(inputs).length > 0, true);
});
