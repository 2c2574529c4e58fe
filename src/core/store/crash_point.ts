/**
 * Named points where a test can make virtdev die with SIGKILL, to prove that
 * multi-step changes recover. Set `VIRTDEV_TEST_CRASH_AT=<point>`; unset, the
 * points do nothing.
 *
 * @module
 */

/** Kills this process with SIGKILL if `point` is the one under test. */
export function crashPoint(point: string): void {
  if (Deno.env.get("VIRTDEV_TEST_CRASH_AT") === point) {
    Deno.kill(Deno.pid, "SIGKILL");
  }
}
