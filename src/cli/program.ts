/**
 * What virtdev says of itself in help, the short usage and the man page.
 *
 * @module
 */

/** The program name in help and messages. */
export const programName = "virtdev";

/** The line above the command list. */
export const brief = "One KVM/QEMU virtual machine per project: isolation with the convenience of a container.";

/** The line below help. */
export const footer = "Run 'virtdev help <command>' for a command's options. Exit codes are listed in the README.";
