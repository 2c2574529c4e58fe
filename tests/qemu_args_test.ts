import assert from "node:assert/strict";
import { escapeOptionValue, qemuArguments, type VmSpec } from "../src/core/vm/qemu_args.ts";

const spec: VmSpec = {
  name: "web",
  accel: "kvm",
  memoryMiB: 4096,
  cpus: 4,
  firmware: { code: "/fw/CODE.fd", nvram: "/p/web/nvram" },
  disks: { system: "/p/web/system.qcow2", home: "/p/web/home.qcow2" },
  netdev: "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
  runtime: {
    monitorSocket: "/p/web/monitor.sock",
    qmpSocket: "/p/web/qmp.sock",
  },
  fwCfg: [{ name: "project", string: "web" }, { name: "host_key", file: "/p/web/host_key" }],
};

function after(args: readonly string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1]] : []));
}

Deno.test("a project VM's argv: q35, KVM, firmware, discard on both disks, loopback-only SSH", () => {
  const args = qemuArguments(spec);
  assert.deepEqual(after(args, "-machine"), ["q35,accel=kvm"]);
  assert.deepEqual(after(args, "-cpu"), ["host"]);
  assert.deepEqual(after(args, "-m"), ["4096"]);
  assert.deepEqual(after(args, "-smp"), ["4"]);
  assert.deepEqual(after(args, "-name"), ["web,process=virtdev-web"]);
  assert.deepEqual(after(args, "-drive"), [
    "if=pflash,format=raw,readonly=on,file=/fw/CODE.fd",
    "if=pflash,format=raw,file=/p/web/nvram",
    "file=/p/web/system.qcow2,if=virtio,format=qcow2,discard=unmap",
    "file=/p/web/home.qcow2,if=virtio,format=qcow2,discard=unmap",
  ]);
  assert.deepEqual(after(args, "-netdev"), ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"]);
  assert.deepEqual(after(args, "-device"), [
    "virtio-net-pci,netdev=net0,romfile=",
    "virtio-rng-pci",
    "virtio-balloon-pci,free-page-reporting=on",
  ]);
  assert.deepEqual(after(args, "-mon"), ["chardev=monitor,mode=readline", "chardev=qmp,mode=control"]);
  assert.ok(after(args, "-chardev").includes("socket,id=qmp,path=/p/web/qmp.sock,server=on,wait=off"));
  // The host agent holds the serial console on QEMU's stdio; QEMU writes no log of its own.
  assert.ok(after(args, "-chardev").includes("stdio,id=serial,signal=off"));
  assert.deepEqual(after(args, "-serial"), ["chardev:serial"]);
  assert.ok(!args.some((arg) => arg.includes("logfile=")));
  assert.deepEqual(after(args, "-fw_cfg"), [
    "name=opt/virtdev/project,string=web",
    "name=opt/virtdev/host_key,file=/p/web/host_key",
  ]);
});

Deno.test("TCG uses the emulated 'max' CPU; no runtime sockets means a foreground serial", () => {
  const args = qemuArguments({ ...spec, accel: "tcg", runtime: undefined, netdev: undefined });
  assert.deepEqual(after(args, "-machine"), ["q35,accel=tcg"]);
  assert.deepEqual(after(args, "-cpu"), ["max"]);
  assert.deepEqual(after(args, "-netdev"), ["user,id=net0"]);
  assert.deepEqual(after(args, "-serial"), ["stdio"]);
});

Deno.test("paths with commas are escaped in every option", () => {
  assert.equal(escapeOptionValue("a,b,,c"), "a,,b,,,,c");
  const args = qemuArguments({
    ...spec,
    disks: { system: "/odd,dir/system.qcow2", home: "/odd,dir/home.qcow2" },
    firmware: { code: "/fw,x/CODE.fd", nvram: "/odd,dir/nvram" },
    smbiosSerial: "ds=nocloud-net;s=http://10.0.2.2:8000/",
  });
  assert.ok(args.includes("file=/odd,,dir/system.qcow2,if=virtio,format=qcow2,discard=unmap"));
  assert.ok(args.includes("if=pflash,format=raw,readonly=on,file=/fw,,x/CODE.fd"));
  assert.ok(args.includes("type=1,serial=ds=nocloud-net;s=http://10.0.2.2:8000/"));
  for (const arg of args) assert.doesNotMatch(arg, /[^,],[^,=]*dir/, arg);
});

Deno.test("the install boot logs its serial console to a file, serves its seed by SMBIOS and does not reboot", () => {
  const args = qemuArguments({
    ...spec,
    runtime: undefined,
    netdev: undefined,
    fwCfg: undefined,
    serialLog: "/c/install,console.log",
    smbiosSerial: "ds=nocloud-net;s=http://10.0.2.2:4321/",
    noReboot: true,
  });
  assert.deepEqual(after(args, "-chardev"), ["file,id=serial,path=/c/install,,console.log"]);
  assert.deepEqual(after(args, "-serial"), ["chardev:serial"]);
  assert.deepEqual(after(args, "-monitor"), ["none"]);
  assert.deepEqual(after(args, "-smbios"), ["type=1,serial=ds=nocloud-net;s=http://10.0.2.2:4321/"]);
  assert.ok(args.includes("-no-reboot"));
  assert.ok(!args.includes("-fw_cfg"));
  assert.ok(!qemuArguments(spec).includes("-no-reboot"));
});

Deno.test("a VM under the agent pauses on panic, with an event socket; the maintenance VM also on power-off", () => {
  const runtime = { monitorSocket: "/run/m.sock", qmpSocket: "/run/q.sock" };
  const eventSocket = "/run/a,b.sock";
  const joined = qemuArguments({ ...spec, runtime, eventSocket }).join(" ");
  assert.match(joined, /-action panic=pause/);
  assert.match(joined, /-device pvpanic/);
  assert.match(
    joined,
    /socket,id=qmpwatch,path=\/run\/a,,b\.sock,server=on,wait=off -mon chardev=qmpwatch,mode=control/,
  );
  assert.doesNotMatch(joined, /no-shutdown/);
  assert.match(qemuArguments({ ...spec, runtime, eventSocket, pauseOnPowerOff: true }).join(" "), /-no-shutdown/);
  // The install boot (console to a file) is watched the same way.
  assert.match(qemuArguments({ ...spec, serialLog: "/tmp/c.log", eventSocket }).join(" "), /-device pvpanic/);
  assert.doesNotMatch(qemuArguments(spec).join(" "), /no-shutdown|pvpanic|qmpwatch/);
});
