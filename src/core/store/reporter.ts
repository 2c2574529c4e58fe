/**
 * Where core work sends progress and warnings. The CLI's `Ui` fits; core
 * modules never print.
 *
 * @module
 */

/** Progress lines and warnings for people. */
export interface Reporter {
  info(line: string): void;
  warn(line: string): void;
}
