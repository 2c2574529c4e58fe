import assert from "node:assert/strict";
import { join } from "node:path";
import { type Environment, loadConfig, resolveFirmware } from "../src/core/store/config.ts";
import { ConfigError, VirtdevError } from "../src/core/store/errors.ts";

const home = { HOME: "/home/u" };

Deno.test("defaults follow XDG", () => {
  const config = loadConfig(home, { host: { cpus: 16, memoryMiB: 65536 } });
  assert.equal(config.home, "/home/u/.local/share/virtdev");
  assert.equal(config.cache, "/home/u/.cache/virtdev");
  assert.equal(config.configDir, "/home/u/.config/virtdev");
  assert.equal(config.sshKey, "/home/u/.local/share/virtdev/ssh/id");
  assert.equal(config.consoleLogBytes, 16 * 1024 ** 2);
  assert.equal(config.systemDiskSize, 24 * 1024 ** 3);
  assert.equal(config.homeDiskSize, 48 * 1024 ** 3);
  assert.equal(config.vmMemoryMiB, 4096);
  assert.equal(config.vmCpus, 4);
  assert.equal(config.stopTimeout, 60);
  assert.equal(config.waitTimeout, 120);
  assert.equal(config.timezone, "UTC");
  assert.equal(config.accel, "auto");
});

Deno.test("VM size defaults fit the host: min(4, CPUs), min(4 GiB, a quarter of memory), at least 512 MiB", () => {
  const sized = (cpus: number, memoryMiB: number) => {
    const config = loadConfig(home, { host: { cpus, memoryMiB } });
    return [config.vmCpus, config.vmMemoryMiB];
  };
  assert.deepEqual(sized(2, 24 * 1024), [2, 4096]);
  assert.deepEqual(sized(1, 6000), [1, 1472]);
  assert.deepEqual(sized(8, 1024), [4, 512]);
  const host = loadConfig(home);
  assert.equal(host.vmCpus, Math.min(4, navigator.hardwareConcurrency));
  assert.equal(loadConfig({ ...home, VIRTDEV_VM_CPUS: "3" }, { host: { cpus: 1, memoryMiB: 1024 } }).vmCpus, 3);
});

Deno.test("XDG variables and overrides are honoured", () => {
  const config = loadConfig({
    HOME: "/home/u",
    XDG_DATA_HOME: "/data",
    XDG_CACHE_HOME: "/c",
    XDG_CONFIG_HOME: "/cfg",
    VIRTDEV_SSH_KEY: "/keys/k",
    VIRTDEV_VM_MEMORY: "2G",
    VIRTDEV_ACCEL: "tcg",
  });
  assert.equal(config.home, "/data/virtdev");
  assert.equal(config.cache, "/c/virtdev");
  assert.equal(config.configDir, "/cfg/virtdev");
  assert.equal(config.sshKey, "/keys/k");
  assert.equal(config.vmMemoryMiB, 2048);
  assert.equal(config.accel, "tcg");
  assert.equal(loadConfig({ HOME: "/h", VIRTDEV_HOME: "/v/" }).sshKey, "/v/ssh/id");
});

const badValues: readonly (readonly [string, string])[] = [
  ["VIRTDEV_HOME", "relative/path"],
  ["VIRTDEV_SSH_KEY", "id"],
  ["VIRTDEV_CACHE", "~/cache"],
  ["VIRTDEV_TIMEZONE", "Europe/../etc"],
  ["VIRTDEV_CONSOLE_LOG_SIZE", "lots"],
  ["VIRTDEV_CONSOLE_LOG_SIZE", "1K"],
  ["VIRTDEV_SYSTEM_DISK_SIZE", "big"],
  ["VIRTDEV_SYSTEM_DISK_SIZE", "1M"],
  ["VIRTDEV_HOME_DISK_SIZE", "48X"],
  ["VIRTDEV_VM_MEMORY", "lots"],
  ["VIRTDEV_VM_MEMORY", "64"],
  ["VIRTDEV_VM_MEMORY", "1.5"],
  ["VIRTDEV_VM_CPUS", "four"],
  ["VIRTDEV_VM_CPUS", "0"],
  ["VIRTDEV_STOP_TIMEOUT", "-1"],
  ["VIRTDEV_STOP_TIMEOUT", "1m"],
  ["VIRTDEV_WAIT_TIMEOUT", "0"],
  ["OVMF_CODE", "OVMF_CODE.fd"],
  ["OVMF_VARS", "vars.fd"],
  ["VIRTDEV_ACCEL", "hvf"],
  ["VIRTDEV_SUPERVISOR", "docker"],
  ["VIRTDEV_NET_BACKEND", "vde"],
  ["XDG_DATA_HOME", "data"],
];

for (const [variable, value] of badValues) {
  Deno.test(`a bad ${variable} (${JSON.stringify(value)}) is refused with exit 65, naming it`, () => {
    const env: Environment = { ...home, [variable]: value };
    assert.throws(() => loadConfig(env), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, variable);
      assert.equal(error.exitCode, 65);
      assert.match(error.message, new RegExp(variable));
      assert.ok(error.message.endsWith("."), error.message);
      return true;
    });
  });
}

Deno.test("without HOME the XDG defaults cannot be formed", () => {
  assert.throws(() => loadConfig({}), ConfigError);
  assert.equal(loadConfig({ VIRTDEV_HOME: "/v", VIRTDEV_CACHE: "/c", XDG_CONFIG_HOME: "/x" }).home, "/v");
});

Deno.test("firmware is detected across layouts, and configured paths must exist", async () => {
  const root = await Deno.makeTempDir();
  try {
    const candidates = [
      { code: join(root, "arch/CODE.4m.fd"), vars: join(root, "arch/VARS.4m.fd") },
      { code: join(root, "debian/CODE_4M.fd"), vars: join(root, "debian/VARS_4M.fd") },
    ];
    await Deno.mkdir(join(root, "debian"));
    await Deno.writeTextFile(candidates[1].code, "");
    await Deno.writeTextFile(candidates[1].vars, "");
    assert.deepEqual(resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined }, { candidates }), candidates[1]);
    assert.throws(
      () => resolveFirmware({ ovmfCode: join(root, "missing.fd"), ovmfVars: undefined }, { candidates }),
      (error: unknown) => error instanceof VirtdevError && error.exitCode === 5 && /OVMF_CODE/.test(error.message),
    );
    assert.throws(
      () => resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined }, { candidates: [candidates[0]] }),
      (error: unknown) => error instanceof VirtdevError && error.exitCode === 5,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
