/**
 * What a command handler receives: output, the environment, and lazily the
 * validated configuration and store.
 *
 * @module
 */
import { type Config, type Environment, loadConfig } from "../core/store/config.ts";
import { Store } from "../core/store/store.ts";
import { tightenStoreRoot } from "../core/store/file_modes.ts";
import type { Ui } from "../ui/io.ts";

/** The world a command runs in. */
export class Context {
  /** Output and prompts. */
  readonly ui: Ui;
  /** The environment variables. */
  readonly env: Environment;
  #config: Config | undefined;
  #store: Store | undefined;

  constructor(ui: Ui, env: Environment) {
    this.ui = ui;
    this.env = env;
  }

  /**
   * The configuration, validated on first use.
   *
   * @throws {ConfigError} exit 65 naming a bad variable.
   */
  get config(): Config {
    this.#config ??= loadConfig(this.env);
    return this.#config;
  }

  /**
   * The store under `VIRTDEV_HOME`. On first use a home that others may
   * enter is closed to them, with a warning.
   */
  get store(): Store {
    if (this.#store === undefined) {
      this.#store = new Store(this.config.home);
      const was = tightenStoreRoot(this.#store.root, this.#store.lockFile);
      if (was !== undefined) {
        this.ui.warn(
          `${this.#store.root} was open to other users (mode ${was.toString(8).padStart(3, "0")}); it is now 0700.`,
        );
      }
    }
    return this.#store;
  }
}
