/**
 * XEP-0198 stream management, client side: the counters and the queue of stanzas the server has
 * not yet acknowledged (the arithmetic is the server's SmState: it is the same in both directions),
 * what a resumption token is, and the nonzas we send and answer.
 *
 * What happens to unacknowledged stanzas:
 * - resumed (`<resumed h=.../>`): the server's h acknowledges what it got; the rest is sent again on
 *   the new connection and keeps its numbers. Nothing is lost and nothing is duplicated.
 * - resumption failed, or the server forgot the session: the client binds a new session and sends
 *   every unacknowledged stanza again. The server may have received some of them before the
 *   connection died without acknowledging them, so the peer can see duplicates (XEP-0198 §6 allows
 *   no better); a stanza is never silently dropped.
 *
 * References: XEP-0198 §3 (stream feature), §4 (enable/enabled, 'h' and its 2^32 wrap), §5
 * (<r/> and <a/>), §6 (resume/resumed/failed, resending unacknowledged stanzas).
 */
import { Element } from "ltx";
import { NS_SM, parseH, SmState } from "../../server/streams/stream-management.ts";
import type { StreamConnection } from "./connection.ts";

export { NS_SM };

/** What a later connection needs to resume this session (XEP-0198 §6). */
export interface ResumeToken {
  readonly id: string;
  /** The full JID the session was bound to. */
  readonly jid: string;
}

export class ClientStreamManagement {
  readonly state: SmState;
  /** Set when the server allowed resumption (XEP-0198 §4 `resume="true"` and an id). */
  readonly token: ResumeToken | undefined;
  /** When we asked for an ack and got none yet (liveness check); undefined when none is due. */
  ackRequestedAt: number | undefined;

  constructor(state: SmState, token: ResumeToken | undefined) {
    this.state = state;
    this.token = token;
  }

  /** XEP-0198 §4: after binding; `<enabled/>` or `<failed/>` comes back. */
  static async enable(
    conn: StreamConnection,
    jid: string,
  ): Promise<{ sm: ClientStreamManagement | undefined; uncounted: number }> {
    conn.send(new Element("enable", { xmlns: NS_SM, resume: "true" }));
    const { el, index } = await conn.takeWithIndex(
      (e) => e.attrs.xmlns === NS_SM && (e.name === "enabled" || e.name === "failed"),
      "stream management",
    );
    if (el.name === "failed") return { sm: undefined, uncounted: index };
    const id = el.attrs.id;
    const resumable = (el.attrs.resume === "true" || el.attrs.resume === "1") && !!id;
    const sm = new ClientStreamManagement(
      new SmState(id ?? "", resumable),
      resumable ? { id: id!, jid } : undefined,
    );
    // Stanzas that arrived before <enabled/> were sent before the server started counting.
    return { sm, uncounted: index };
  }

  /**
   * XEP-0198 §6: asks to resume `previous` on a fresh, authenticated stream. Returns the resumed
   * state, or undefined when the server refused (then bind anew). Unacknowledged stanzas the
   * server says it got are dropped from `previous` either way.
   */
  static async resume(
    conn: StreamConnection,
    previous: ClientStreamManagement,
  ): Promise<ClientStreamManagement | undefined> {
    const token = previous.token!;
    conn.send(new Element("resume", { xmlns: NS_SM, previd: token.id, h: String(previous.state.inbound) }));
    const el = await conn.take(
      (e) => e.attrs.xmlns === NS_SM && (e.name === "resumed" || e.name === "failed"),
      "stream resumption",
    );
    // XEP-0198 §6: both <resumed/> and (since 1.6) <failed/> may tell what the server handled.
    const h = parseH(el.attrs.h);
    if (h !== undefined) previous.state.ack(h);
    if (el.name !== "resumed") return undefined;
    previous.ackRequestedAt = undefined;
    return previous;
  }

  /** An outbound stanza is now counted and kept until acknowledged. */
  sent(stanza: Element): void {
    this.state.sent(stanza);
  }

  /** Inbound stanza handled (XEP-0198 §4: every message, presence and iq counts). */
  received(): void {
    this.state.received();
  }

  /**
   * Handles an SM nonza on an established stream. Returns an error message when the server broke
   * the protocol (acknowledged more than we sent), else undefined.
   */
  handle(el: Element, conn: StreamConnection): string | undefined {
    if (el.name === "r") {
      conn.send(new Element("a", { xmlns: NS_SM, h: String(this.state.inbound) })); // XEP-0198 §5
      return undefined;
    }
    if (el.name === "a") {
      this.ackRequestedAt = undefined;
      const h = parseH(el.attrs.h);
      if (h === undefined || !this.state.ack(h)) return `bad acknowledgement h=${el.attrs.h}`;
    }
    return undefined;
  }

  /** XEP-0198 §5: ask the server what it has handled. */
  requestAck(conn: StreamConnection): void {
    this.ackRequestedAt ??= Date.now();
    conn.send(new Element("r", { xmlns: NS_SM }));
  }

  /** Unacknowledged stanzas, oldest first (kept; used to resend after resumption). */
  pending(): Element[] {
    return this.state.pending().map((u) => u.stanza);
  }

  /** Removes and returns the unacknowledged stanzas (the session will not be resumed). */
  takeUnacked(): Element[] {
    return this.state.takeUnacked().map((u) => u.stanza);
  }
}
