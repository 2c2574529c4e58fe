/**
 * A process that runs one reseal swap (`swapInMaintenance`) on the store at
 * `Deno.args[0]`, from generation 1 to 2, so that tests can kill it with
 * VIRTDEV_TEST_CRASH_AT at each step.
 */
import { swapInMaintenance } from "../src/core/base/reseal.ts";
import { Store } from "../src/core/store/store.ts";

await swapInMaintenance(new Store(Deno.args[0]), { from: "1", to: "2" });
