/**
 * One frame at a time to passt, for connections where an old passt needs
 * it.
 *
 * passt before 2024 (Debian 12's) handles the frames of one TCP
 * connection that arrive in one read from its socket as a batch, and in
 * three states it takes the first frame alone: a SYN that opens a
 * connection, the guest's answer to a connection passt opens into it (a
 * forward), and any frame after the guest's FIN. If the state changes on
 * that first frame, it then takes the whole batch, the unsigned count of
 * frames left wraps around, and passt loops for ever at full CPU: the
 * guest's network stops and a host core burns. A busy passt meets this
 * with an ordinary retransmission or the last ACKs of a download (seen
 * once in a few dozen downloads here); a hostile guest meets it at will,
 * with two raw frames.
 *
 * So in those states a frame of the guest goes to passt only once passt
 * has sent something for that connection since the last one: passt has
 * read a frame once it answers it, and in those states the guest sends
 * only in answer to passt (an ACK of its data or FIN), or resends. What
 * comes meanwhile is dropped, as a lossy link would (TCP resends it), and
 * after {@link passtAnswerMs} one more frame may pass, for a passt that
 * never answers.
 *
 * @module
 */

/** How long a guest frame waits for passt's answer before the next of its connection may pass. */
export const passtAnswerMs = 5_000;
/** The most connections paced at once; the oldest go first. */
const _maxPaced = 8192;

interface _Paced {
  /** `opening` until passt answers the handshake; `closing` after the guest's FIN, until a reset. */
  phase: "opening" | "closing";
  /** A guest frame went to passt and passt has sent nothing for this connection since. */
  waiting: boolean;
  since: number;
}

/** TCP flags the pacing reads. */
export interface TcpSegmentFlags {
  readonly syn: boolean;
  readonly ack: boolean;
  readonly fin: boolean;
  readonly rst: boolean;
}

/** The connections paced, keyed by the guest's side first. */
export class PasstPacing {
  readonly #paced = new Map<string, _Paced>();
  readonly #now: () => number;

  constructor(options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Whether any connection is paced (callers skip building keys when none is). */
  get busy(): boolean {
    return this.#paced.size > 0;
  }

  /** passt sent a frame of connection `key`. */
  fromPasst(key: string, flags: TcpSegmentFlags): void {
    const paced = this.#paced.get(key);
    if (flags.rst) {
      this.#paced.delete(key);
    } else if (flags.syn && !flags.ack) {
      // A connection into the guest begins; a SYN passt sends again answers nothing.
      if (!paced) this.#remember(key, { phase: "opening", waiting: false, since: 0 });
    } else if (paced?.phase === "opening") {
      this.#paced.delete(key);
    } else if (paced) {
      paced.waiting = false;
    }
  }

  /** Whether the guest's frame of connection `key` may go to passt now. */
  fromGuest(key: string, flags: TcpSegmentFlags): boolean {
    let paced = this.#paced.get(key);
    if (flags.syn && !flags.ack && paced?.phase !== "opening") {
      paced = { phase: "opening", waiting: false, since: 0 };
      this.#remember(key, paced);
    }
    if (!paced) {
      if (flags.fin && !flags.rst) this.#remember(key, { phase: "closing", waiting: true, since: this.#now() });
      return true;
    }
    const now = this.#now();
    if (paced.waiting && now - paced.since < passtAnswerMs) return false;
    paced.waiting = true;
    paced.since = now;
    if (flags.fin) paced.phase = "closing";
    return true;
  }

  #remember(key: string, paced: _Paced): void {
    this.#paced.delete(key);
    this.#paced.set(key, paced);
    while (this.#paced.size > _maxPaced) this.#paced.delete(this.#paced.keys().next().value as string);
  }
}
