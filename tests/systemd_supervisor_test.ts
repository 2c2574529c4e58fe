/**
 * The systemd supervisor, driven through the real CLI and the real QEMU
 * with stand-ins for systemd-run, systemctl, loginctl and journalctl: no
 * systemd user manager runs on these machines. The stand-ins record their
 * arguments and run the unit's command in the background as systemd would.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveFirmware } from "../src/core/store/config.ts";
import { exists, killVms, makeInstallation, makeSandbox, virtdev } from "./_helpers.ts";

const _fakeSystemd = (state: string) => ({
  "systemd-run": `#!/bin/bash
echo "systemd-run $*" >> "${state}/calls"
unit=
while [[ $1 != -- ]]; do [[ $1 == --unit=* ]] && unit=\${1#--unit=}; shift; done
shift
setsid "$@" </dev/null >>"${state}/$unit.journal" 2>&1 &
echo $! > "${state}/$unit.pid"
`,
  systemctl: `#!/bin/bash
echo "systemctl $*" >> "${state}/calls"
[[ $2 == show-environment ]] && exit 0
unit=$3
pid=$(cat "${state}/$unit.pid" 2>/dev/null)
case $2 in
  show) if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then echo active; else echo failed; fi ;;
  stop) [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; while [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done ;;
esac
exit 0
`,
  loginctl: `#!/bin/bash
echo "loginctl $*" >> "${state}/calls"
echo no
`,
  journalctl: `#!/bin/bash
echo "journalctl $*" >> "${state}/calls"
cat "${state}"/*.journal 2>/dev/null
`,
});

Deno.test("systemd supervisor: transient unit, linger warning, reset-failed, journalctl (stubbed: no systemd user manager)", async () => {
  const firmware = resolveFirmware({ ovmfCode: undefined, ovmfVars: undefined });
  await using sandbox = await makeSandbox();
  const bin = join(sandbox.root, "bin");
  const state = join(sandbox.root, "systemd");
  const runtimeDir = join(sandbox.root, "run");
  await Deno.mkdir(bin);
  await Deno.mkdir(state);
  await Deno.mkdir(runtimeDir);
  for (const [name, script] of Object.entries(_fakeSystemd(state))) {
    await Deno.writeTextFile(join(bin, name), script, { mode: 0o755 });
  }
  const env = {
    PATH: `${bin}:${sandbox.env.PATH}`,
    XDG_RUNTIME_DIR: runtimeDir,
    USER: "dev",
    VIRTDEV_ACCEL: "tcg",
    VIRTDEV_SUPERVISOR: "auto",
    VIRTDEV_VM_MEMORY: "256",
    VIRTDEV_VM_CPUS: "1",
    VIRTDEV_STOP_TIMEOUT: "2",
  };
  Object.assign(sandbox.env, env);
  await makeInstallation(sandbox, { firmwareVars: firmware.vars });
  for (const args of [["seal"], ["create", "a"]]) assert.equal((await virtdev(sandbox, args)).code, 0);
  const pidFile = join(sandbox.virtdevHome, "projects", "a", "run", "qemu.pid");
  try {
    const start = await virtdev(sandbox, ["start", "a"]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stderr, /systemd supervisor/);
    assert.match(start.stderr, /lingering is not enabled for dev.*enable-linger dev/);
    const calls = await Deno.readTextFile(join(state, "calls"));
    assert.match(calls, /^systemctl --user show-environment$/m, "auto asked the user manager");
    assert.match(calls, /^systemctl --user reset-failed virtdev-a$/m);
    assert.match(
      calls,
      /^systemd-run --user --unit=virtdev-a --description=virtdev project virtual machine: a .*-- \S*deno run .*--allow-run=qemu-system-x86_64,passt,ssh \S*src\/host_agent_main\.ts __host-agent \S*\/projects\/a /m,
    );
    assert.doesNotMatch(calls, /--collect/);
    const status = JSON.parse((await virtdev(sandbox, ["status", "--json", "a"])).stdout);
    assert.equal(status.supervisor, "systemd");
    assert.equal(status.pid, Number((await Deno.readTextFile(pidFile)).trim()));

    await virtdev(sandbox, ["log", "a"]);
    assert.match(await Deno.readTextFile(join(state, "calls")), /^journalctl --user -u virtdev-a --no-hostname$/m);

    // No guest answers the power button: stop falls back to 'systemctl stop'.
    const stop = await virtdev(sandbox, ["stop", "a"]);
    assert.equal(stop.code, 0, stop.stderr);
    const after = await Deno.readTextFile(join(state, "calls"));
    assert.match(after, /^systemctl --user stop virtdev-a$/m);
    assert.equal(
      after.match(/^systemctl --user reset-failed virtdev-a$/gm)?.length,
      2,
      "reset-failed after the stop too",
    );
    assert.equal(await exists(pidFile), false);
    assert.equal((await virtdev(sandbox, ["status", "a"])).stdout.trim(), "stopped");
  } finally {
    await killVms(sandbox, ["a"]);
  }
});
