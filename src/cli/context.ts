/**
 * What a command handler receives: output, the environment, and lazily the
 * validated configuration and store.
 *
 * @module
 */
import { type Config, type Environment, loadConfig } from "../core/store/config.ts";
import { Store } from "../core/store/store.ts";
import type { Ui } from "../ui/io.ts";

/** The world a command runs in. */
export class Context {
  /** Output and prompts. */
  readonly ui: Ui;
  /** The environment variables. */
  readonly env: Environment;
  #config: Config | undefined;

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

  /** The store under `VIRTDEV_HOME`. */
  get store(): Store {
    return new Store(this.config.home);
  }
}
