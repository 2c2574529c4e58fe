/**
 * `iso`: builds the unattended Arch installer with mkarchiso (through
 * sudo, as archiso needs root) from the rendered profile.
 *
 * @module
 */
import { join } from "../store/path.ts";
import type { Config } from "../store/config.ts";
import { ExitCode, VirtdevError } from "../store/errors.ts";
import { ensurePrivateDirectory } from "../store/file_modes.ts";
import { runTool } from "../store/process.ts";
import type { Reporter } from "../store/reporter.ts";
import { pathExists } from "../store/store.ts";
import { publicKeyOf, requireKey } from "../guest/ssh_key.ts";
import { writeProfile } from "./archiso_profile.ts";

/** Exit codes of `iso`. */
export const IsoExit = {
  relengMissing: 7,
  noIso: 8,
  severalIsos: 9,
  buildFailed: 12,
  toolMissing: ExitCode.toolMissing,
} as const;

/** Where archiso keeps the profile virtdev starts from. */
export const relengProfile = "/usr/share/archiso/configs/releng";

/** Where archiso installs mkarchiso. */
export const mkarchisoPath = "/usr/bin/mkarchiso";

/** The profile's version. */
export const profileVersion = "2.0.0";

/** The ISO `iso` writes and `install` boots by default. */
export function isoPath(config: Pick<Config, "cache">): string {
  return join(config.cache, "virtdev.iso");
}

const _archisoHint = "Install archiso (Arch only): sudo pacman -S archiso";

/**
 * Renders the profile and runs mkarchiso.
 *
 * @returns the ISO's path.
 */
export async function buildIso(
  config: Config,
  options: { readonly reporter: Reporter; readonly onOutput: (text: string) => void; readonly releng?: string },
): Promise<string> {
  const releng = options.releng ?? relengProfile;
  await requireKey(config.sshKey);
  // Run through sudo only, so it is looked for where archiso installs it.
  if (!await pathExists(mkarchisoPath)) {
    throw new VirtdevError(`mkarchiso is not installed (${mkarchisoPath}).`, {
      exitCode: IsoExit.toolMissing,
      hint: _archisoHint,
    });
  }
  if (!await pathExists(join(releng, "profiledef.sh"))) {
    throw new VirtdevError(`archiso's releng profile is missing: ${releng}.`, {
      exitCode: IsoExit.relengMissing,
      hint: _archisoHint,
    });
  }
  const build = join(config.cache, "iso-build");
  const profile = join(build, "profile");
  const work = join(build, "work");
  const out = join(build, "out");
  options.reporter.info("Clearing the build tree...");
  // mkarchiso runs as root: its work tree is root's.
  if (await pathExists(build)) await runTool("sudo", ["rm", "-rf", "--", build]);
  await ensurePrivateDirectory(build);
  await writeProfile(releng, profile, {
    publicKey: await publicKeyOf(config.sshKey),
    timezone: config.timezone,
    locale: config.locale,
    keymap: config.keymap,
    version: profileVersion,
  });
  options.reporter.info("Building the ISO with mkarchiso (through sudo)...");
  const result = await runTool("sudo", [mkarchisoPath, "-v", "-w", work, "-o", out, profile], {
    allowFailure: true,
    onOutput: options.onOutput,
    maxCapture: 64 * 1024,
  });
  if (result.code !== 0) {
    throw new VirtdevError(`mkarchiso failed with exit ${result.code}.`, {
      exitCode: IsoExit.buildFailed,
      hint: `Its work tree is kept for a look: ${work}`,
    });
  }
  const isos: string[] = [];
  for await (const entry of Deno.readDir(out)) if (entry.name.endsWith("-x86_64.iso")) isos.push(entry.name);
  if (isos.length !== 1) {
    throw new VirtdevError(
      isos.length === 0 ? `mkarchiso wrote no ISO into ${out}.` : `mkarchiso wrote several ISOs: ${isos.join(", ")}.`,
      { exitCode: isos.length === 0 ? IsoExit.noIso : IsoExit.severalIsos },
    );
  }
  const target = isoPath(config);
  await Deno.rename(join(out, isos[0]), target);
  await runTool("sudo", ["rm", "-rf", "--", work], { allowFailure: true });
  return target;
}
