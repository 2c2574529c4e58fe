/**
 * The terminal as commands see it: stdout for machine values, stderr for
 * people, and stdin for answers. Commands write through an {@link Io} so
 * tests can run them in-process.
 *
 * @module
 */
import { type ColorMode, type Palette, palette, shouldColor } from "./color.ts";
import { stripTerminalControls, TerminalTextFilter } from "../core/guest/terminal_text.ts";

/** Where a command's output and input go. */
export interface Io {
  /** Writes machine-readable output (stdout). */
  out(text: string): void;
  /** Writes messages for people (stderr). */
  err(text: string): void;
  /** Reads one line from stdin, without its newline; `null` on EOF. */
  readLine(): Promise<string | null>;
  /** Whether stderr is a terminal. */
  readonly stderrIsTerminal: boolean;
  /** Whether stdin is a terminal. */
  readonly stdinIsTerminal: boolean;
  /** Whether stdout is a terminal. */
  readonly stdoutIsTerminal: boolean;
}

/** The process's real stdout, stderr and stdin. */
export function processIo(): Io {
  const encoder = new TextEncoder();
  const writeAll = (stream: typeof Deno.stdout, text: string): void => {
    const bytes = encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
  };
  let buffered = "";
  let ended = false;
  return {
    out: (text) => writeAll(Deno.stdout, text),
    err: (text) => writeAll(Deno.stderr, text),
    async readLine(): Promise<string | null> {
      const decoder = new TextDecoder();
      const chunk = new Uint8Array(1024);
      while (!buffered.includes("\n") && !ended) {
        const n = await Deno.stdin.read(chunk);
        if (n === null) ended = true;
        else buffered += decoder.decode(chunk.subarray(0, n), { stream: true });
      }
      if (buffered === "" && ended) return null;
      const index = buffered.indexOf("\n");
      const line = index === -1 ? buffered : buffered.slice(0, index);
      buffered = index === -1 ? "" : buffered.slice(index + 1);
      return line.replace(/\r$/, "");
    },
    stderrIsTerminal: Deno.stderr.isTerminal(),
    stdinIsTerminal: Deno.stdin.isTerminal(),
    stdoutIsTerminal: Deno.stdout.isTerminal(),
  };
}

/** Output helpers shared by every command. */
export class Ui {
  /** The underlying streams. */
  readonly io: Io;
  /** Styles for stderr, honouring `--color`. */
  readonly colors: Palette;
  /** Styles for tables on stdout: `auto` follows stdout, not stderr. */
  readonly stdoutColors: Palette;

  /** Whether `VIRTDEV_DEBUG` asks for stack traces. */
  readonly debug: boolean;

  constructor(
    io: Io,
    options: { readonly color: ColorMode; readonly env: Readonly<Record<string, string | undefined>> },
  ) {
    this.io = io;
    this.debug = Boolean(options.env.VIRTDEV_DEBUG);
    this.colors = palette(shouldColor(options.color, { stderrIsTerminal: io.stderrIsTerminal, env: options.env }));
    this.stdoutColors = palette(
      shouldColor(options.color, { stderrIsTerminal: io.stdoutIsTerminal, env: options.env }),
    );
  }

  /** A machine-readable line on stdout. */
  result(line: string): void {
    this.io.out(`${line}\n`);
  }

  /**
   * A progress or information line on stderr. Lines may quote a guest
   * (file names, tool output), so control sequences are removed from all
   * of them.
   */
  info(line: string, style?: keyof Palette): void {
    const clean = stripTerminalControls(line);
    this.io.err(`${style ? this.colors[style](clean) : clean}\n`);
  }

  /** A success line on stderr, in green. */
  success(line: string): void {
    this.io.err(`${this.colors.green(stripTerminalControls(line))}\n`);
  }

  /** A warning on stderr, in yellow. */
  warn(line: string): void {
    this.io.err(`${this.colors.yellow(`warning: ${stripTerminalControls(line)}`)}\n`);
  }

  /** An error line on stderr: a red `virtdev:` and the message. */
  error(program: string, message: string): void {
    this.io.err(`${this.colors.red(`${program}:`)} ${stripTerminalControls(message)}\n`);
  }

  /** A hint line on stderr. */
  hint(line: string): void {
    this.io.err(`${this.colors.dim("hint:")} ${stripTerminalControls(line)}\n`);
  }

  /**
   * A writer for a stream of text from a guest or a tool talking to one
   * (provision output, rsync's messages), filtered chunk by chunk.
   */
  guestStream(
    write: (text: string) => void = (text) => this.io.err(text),
    options: { readonly keepCarriageReturn?: boolean } = {},
  ): { write(text: string): void; end(): void } {
    const filter = new TerminalTextFilter(options);
    return {
      write: (text) => write(filter.push(text)),
      end: () => write(filter.flush()),
    };
  }

  /**
   * Asks for `expected` to be typed. EOF or an empty line is a no.
   *
   * @returns whether the answer matched exactly.
   */
  async confirmTyped(expected: string): Promise<boolean> {
    return (await this.#ask(`Type '${expected}' to confirm: `)) === expected;
  }

  /** Asks a yes/no question; only `y` or `yes` is a yes. */
  async confirmYesNo(question: string): Promise<boolean> {
    return /^(y|yes)$/i.test(await this.#ask(`${question} [y/N] `) ?? "");
  }

  /** Prints `prompt` and reads the trimmed answer; `null` on EOF. */
  async #ask(prompt: string): Promise<string | null> {
    this.io.err(prompt);
    const answer = await this.io.readLine();
    if (answer === null) this.io.err("\n");
    return answer?.trim() ?? null;
  }
}
