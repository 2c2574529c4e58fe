/**
 * Quoting words for a POSIX shell, for the scripts virtdev writes (the
 * Arch installer, the contract script) and the commands it prints.
 *
 * @module
 */

/** `text` in single quotes, a `'` inside written as `'\''`. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** `word` as typed at a shell: bare when it needs no quotes, quoted otherwise. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=:@+-]+$/.test(word) ? word : shellQuote(word);
}
