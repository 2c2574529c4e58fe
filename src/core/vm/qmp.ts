/**
 * A small client for QEMU's machine protocol (QMP) on a unix socket:
 * capabilities negotiation, commands, and waiting for events.
 *
 * @module
 */

/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  readonly event: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** QEMU answered a command with an error. */
export class QmpCommandError extends Error {
  /** QEMU's error class, e.g. `CommandNotFound`. */
  readonly errorClass: string;

  constructor(command: string, errorClass: string, description: string) {
    super(`QMP ${command} failed: ${description} (${errorClass}).`);
    this.name = "QmpCommandError";
    this.errorClass = errorClass;
  }
}

/** QEMU closed the QMP connection (as it does when it exits). */
export class QmpClosedError extends Error {
  constructor() {
    super("QMP connection closed.");
    this.name = "QmpClosedError";
  }
}

type _Message = {
  readonly QMP?: unknown;
  readonly return?: unknown;
  readonly error?: { readonly class: string; readonly desc: string };
  readonly event?: string;
  readonly data?: Record<string, unknown>;
};

/** Where QMP is spoken: a unix socket, or a QEMU's standard streams (`-qmp stdio`). */
export interface QmpChannel {
  readonly readable: ReadableStream<Uint8Array>;
  write(bytes: Uint8Array): Promise<unknown>;
  close(): void;
}

/** A connected, negotiated QMP session. */
export class QmpClient implements AsyncDisposable {
  readonly #connection: QmpChannel;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  readonly #events: QmpEvent[] = [];
  #closed = false;

  private constructor(connection: QmpChannel) {
    this.#connection = connection;
    this.#reader = connection.readable.pipeThrough(new TextDecoderStream()).getReader();
  }

  /**
   * Connects to the QMP socket at `path` and leaves capabilities negotiation
   * mode, so that commands can be sent.
   */
  static async connect(path: string): Promise<QmpClient> {
    return await QmpClient.over(await Deno.connect({ transport: "unix", path }));
  }

  /** Negotiates QMP on `channel` (e.g. a child QEMU's stdout and stdin). */
  static async over(channel: QmpChannel): Promise<QmpClient> {
    const client = new QmpClient(channel);
    try {
      const greeting = await client.#next();
      if (greeting.QMP === undefined) throw new Error("The socket did not greet with QMP.");
      await client.execute("qmp_capabilities");
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Runs `command` and returns what QEMU returned. Events that arrive meanwhile are kept. */
  async execute(command: string, args?: Readonly<Record<string, unknown>>): Promise<unknown> {
    const request = JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args });
    await this.#connection.write(new TextEncoder().encode(`${request}\n`));
    for (;;) {
      const message = await this.#next();
      if (message.event !== undefined) {
        this.#events.push({ event: message.event, data: message.data });
        continue;
      }
      if (message.error) throw new QmpCommandError(command, message.error.class, message.error.desc);
      return message.return;
    }
  }

  /**
   * Waits for an event named `name`; resolves `undefined` when QEMU closes
   * the connection first (as it does when it exits).
   */
  async waitForEvent(name: string): Promise<QmpEvent | undefined> {
    const index = this.#events.findIndex((event) => event.event === name);
    if (index !== -1) return this.#events.splice(index, 1)[0];
    for (;;) {
      const event = await this.#nextNewEvent();
      if (event === undefined || event.event === name) return event;
      this.#events.push(event);
    }
  }

  /** The next event, kept or new; `undefined` once QEMU has closed the connection. */
  async nextEvent(): Promise<QmpEvent | undefined> {
    return this.#events.shift() ?? await this.#nextNewEvent();
  }

  /** Reads until an event arrives; `undefined` when the connection closes. */
  async #nextNewEvent(): Promise<QmpEvent | undefined> {
    for (;;) {
      let message: _Message;
      try {
        message = await this.#next();
      } catch {
        return undefined;
      }
      if (message.event !== undefined) return { event: message.event, data: message.data };
    }
  }

  /** Closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    try {
      this.#connection.close();
    } catch {
      // Already closed by the peer.
    }
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #next(): Promise<_Message> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline !== -1) {
        const line = this.#buffer.slice(0, newline).trim();
        this.#buffer = this.#buffer.slice(newline + 1);
        if (line !== "") return JSON.parse(line) as _Message;
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new QmpClosedError();
      this.#buffer += value;
    }
  }
}
