// deno-lint-ignore-file no-control-regex -- matching control bytes is the point of this file.
/**
 * Text from a guest made safe for the user's terminal: escape sequences
 * (CSI, OSC, DCS and the like), C0 and C1 control characters and DEL are
 * removed, so a guest cannot retitle the window, move the cursor, hide
 * text, or reach the terminal's more dangerous features through anything
 * virtdev prints. Newlines and tabs stay; carriage returns stay only where
 * a caller asks (rsync redraws its progress line with them).
 *
 * @module
 */

const _escapeCharacter = "\x1b";

/** Options for the filters. */
export interface TerminalTextOptions {
  /** Keep `\r` (for progress lines that redraw themselves). */
  readonly keepCarriageReturn?: boolean;
}

// ESC followed by: CSI (params, intermediates, final), a string command
// (OSC, DCS, SOS, PM, APC) up to BEL or ST, or one more character.
const _sequence =
  /\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)|[\x20-\x2f]*[\x30-\x7e])/g;
const _controls = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
const _controlsKeepingReturn = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;

/** `text` with every terminal control sequence and control character removed. */
export function stripTerminalControls(text: string, options: TerminalTextOptions = {}): string {
  return text.replace(_sequence, "").replace(options.keepCarriageReturn ? _controlsKeepingReturn : _controls, "");
}

/** The longest unfinished escape sequence held back for the next chunk. */
const _maxCarry = 256;

/**
 * A filter for a stream that arrives in chunks: an escape sequence split
 * between two chunks is removed whole rather than leaving its tail behind.
 */
export class TerminalTextFilter {
  readonly #options: TerminalTextOptions;
  #carry = "";

  constructor(options: TerminalTextOptions = {}) {
    this.#options = options;
  }

  /** Filters the next chunk; part of it may be held back until the next. */
  push(chunk: string): string {
    let text = this.#carry + chunk;
    this.#carry = "";
    // The first sequence that has not ended runs to the end of the text.
    for (let at = text.indexOf(_escapeCharacter); at !== -1; at = text.indexOf(_escapeCharacter, at + 1)) {
      if (text.length - at > _maxCarry) continue;
      if (_isUnfinished(text.slice(at))) {
        this.#carry = text.slice(at);
        text = text.slice(0, at);
        break;
      }
    }
    return stripTerminalControls(text, this.#options);
  }

  /** What is held back, filtered (call at the end of the stream). */
  flush(): string {
    const rest = this.#carry;
    this.#carry = "";
    return stripTerminalControls(rest, this.#options);
  }
}

/** Whether `tail` (starting with ESC) is the beginning of a sequence that has not ended yet. */
function _isUnfinished(tail: string): boolean {
  if (tail.length === 1) return true;
  const kind = tail[1];
  if (kind === "[") return !/^\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]/.test(tail);
  if ("]PX^_".includes(kind)) return !/\x07|\x1b\\/.test(tail.slice(2));
  return !/^\x1b[\x20-\x2f]*[\x30-\x7e]/.test(tail);
}
