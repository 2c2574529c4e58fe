/**
 * The install boot notices a guest that QEMU stopped: a real QEMU runs the
 * firmware with the install's own command line, and the test stops the
 * guest as a kernel panic does (pvpanic) or as a person does (the
 * monitor). Install ends QEMU and fails with exit 12 and the reason within
 * 5 s, instead of waiting for VIRTDEV_INSTALL_TIMEOUT.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { bootInstallVm, InstallExit } from "../src/core/base/install.ts";
import { resolveFirmware } from "../src/core/store/config.ts";
import { VirtdevError } from "../src/core/store/errors.ts";
import { qemuArguments } from "../src/core/vm/qemu_args.ts";
import { sh } from "./_helpers.ts";

const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });

for (
  const [how, command, reason] of [
    ["a kernel panic (pvpanic)", "o 0x505 1", /the guest kernel panicked/],
    ["a pause through the monitor", "stop", /paused through the monitor/],
  ] as const
) {
  Deno.test(`install ends within 5 s on ${how}, with exit 12 and the reason`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "virtdev-install-halt-" });
    try {
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "system.qcow2"), "64M"]);
      await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "home.qcow2"), "64M"]);
      await Deno.copyFile(firmware.vars, join(dir, "nvram"));
      const watchSocket = join(dir, "watch.sock");
      const monitor = join(dir, "monitor.sock");
      const args = [
        ...qemuArguments({
          name: "virtdev-install",
          accel: "tcg",
          memoryMiB: 256,
          cpus: 1,
          firmware: { code: firmware.code, nvram: join(dir, "nvram") },
          disks: { system: join(dir, "system.qcow2"), home: join(dir, "home.qcow2") },
          serialLog: join(dir, "console.log"),
          noReboot: true,
          eventSocket: watchSocket,
        }),
        // The test's own hand on the VM.
        "-monitor",
        `unix:${monitor},server=on,wait=off`,
      ];
      const progress = { info() {}, warn() {}, stage() {}, failed() {} };
      const booting = bootInstallVm(args, {
        consoleLog: join(dir, "console.log"),
        timeoutSeconds: 120,
        progress,
        watchSocket,
      });
      const outcome = booting.then(() => undefined, (error) => error);
      // The firmware is running once it has written to its console.
      const consoleBytes = async () => (await Deno.stat(join(dir, "console.log")).catch(() => undefined))?.size ?? 0;
      for (let i = 0; i < 300 && await consoleBytes() === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const hmp = await Deno.connect({ transport: "unix", path: monitor });
      const stopped = performance.now();
      await hmp.write(new TextEncoder().encode(`${command}\n`));
      const error = await outcome;
      const seconds = (performance.now() - stopped) / 1000;
      hmp.close();
      assert.ok(error instanceof VirtdevError, String(error));
      assert.equal(error.exitCode, InstallExit.halted);
      assert.match(error.message, reason);
      assert.ok(seconds < 5, `install ended ${seconds.toFixed(2)} s after the stop`);
      // deno-lint-ignore no-console -- the figure beside the test.
      console.log(`    install ended ${seconds.toFixed(2)} s after ${how}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
