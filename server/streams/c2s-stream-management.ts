/**
 * XEP-0198 stream management as a client session runs it: <enable/> and <enabled/>, answering
 * <r/> and <a/>, asking for acks, <failed/>, the <resumed/> reply and the resend that follows,
 * waiting for a dropped session to be resumed, and what becomes of the stanzas the client never
 * acknowledged when the session ends (no silent loss). SmState (stream-management.ts) keeps the
 * counters and the queue; the stream's life cycle (phases, binding, moving a session onto a new
 * connection) stays in c2s.ts.
 * References: XEP-0198 §3 (stream feature), §4 (enabling, "handled-count-too-high", no silent
 * loss), §5 (acks), §6 (resumption).
 */
import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import type { Router } from "../routing/router.ts";
import { StanzaError, StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { NS_SM, parseH, SmState } from "./stream-management.ts";
import type { XmlConnection } from "./xml-connection.ts";

/**
 * The XEP-0198 state of one client session and what it sends by itself. It extends SmState rather
 * than wrapping it so that counting each stanza in and out stays one call on the stream's `sm`.
 */
export class ClientSm extends SmState {
  /** The transport is gone and the session waits to be resumed (XEP-0198 §6). */
  hibernating = false;
  /** An <r/> went out (or is about to) and its <a/> has not arrived. */
  private ackRequested = false;
  private hibernateTimer: NodeJS.Timeout | undefined;
  /** The session is over: nothing more is sent. */
  private ended = false;
  /** The connection the session runs on now (it changes when the session is resumed). */
  private readonly connection: () => XmlConnection;

  constructor(id: string, resumable: boolean, connection: () => XmlConnection) {
    super(id, resumable);
    this.connection = connection;
  }

  /** XEP-0198 §5: <r/> gets our count; <a/> releases what the client has handled. */
  onAckElement(el: Element): void {
    if (el.name === "r") {
      this.connection().send(new Element("a", { xmlns: NS_SM, h: String(this.inbound) }));
      return;
    }
    this.ackRequested = false;
    const h = parseH(el.attrs.h);
    if (h === undefined || !this.ack(h)) {
      // XEP-0198 §4: acknowledging more than was sent ends the stream.
      throw new StreamError("undefined-condition", handledCountTooHigh(el.attrs.h, this.sentCount));
    }
    if (this.unackedCount > 0) this.requestAck();
  }

  /** XEP-0198 §5: ask for an ack once per burst of outgoing stanzas. */
  requestAck(): void {
    if (this.ackRequested || this.hibernating) return;
    this.ackRequested = true;
    setImmediate(() => {
      if (!this.hibernating && !this.ended) this.connection().send(new Element("r", { xmlns: NS_SM }));
    });
  }

  /** XEP-0198 §6: the transport was lost; `expire` ends the session unless it is resumed in time. */
  hibernate(timeoutMs: number, expire: () => void): void {
    this.hibernating = true;
    this.hibernateTimer = setTimeout(expire, timeoutMs);
    this.hibernateTimer.unref();
  }

  /** The session is being resumed: stop waiting, and forget the ack asked on the old connection. */
  wake(): void {
    if (this.hibernateTimer) clearTimeout(this.hibernateTimer);
    this.hibernating = false;
    this.ackRequested = false;
  }

  /** XEP-0198 §6: <resumed/> on the new connection, then everything still unacknowledged again. */
  resend(): void {
    const conn = this.connection();
    conn.send(new Element("resumed", { xmlns: NS_SM, previd: this.id, h: String(this.inbound) }));
    for (const { stanza } of this.pending()) conn.send(stanza);
    if (this.unackedCount > 0) this.requestAck();
  }

  /** The session is over for good. */
  end(): void {
    this.ended = true;
    if (this.hibernateTimer) clearTimeout(this.hibernateTimer);
  }
}

/** XEP-0198 §4: <enable/> after binding; the session's state and the <enabled/> reply. */
export function enableStreamManagement(
  el: Element,
  resumeTimeoutMs: number,
  connection: () => XmlConnection,
): { sm: ClientSm; enabled: Element } {
  const wantsResume = el.attrs.resume === "true" || el.attrs.resume === "1";
  const resumable = wantsResume && resumeTimeoutMs > 0;
  const id = randomBytes(18).toString("base64url");
  const sm = new ClientSm(id, resumable, connection);
  const attrs: Record<string, string> = { xmlns: NS_SM };
  if (resumable) {
    const requested = parseH(el.attrs.max);
    const max = Math.min(
      requested && requested > 0 ? requested : Number.POSITIVE_INFINITY,
      resumeTimeoutMs / 1000,
    );
    attrs.id = id;
    attrs.resume = "true";
    attrs.max = String(Math.floor(max));
  }
  return { sm, enabled: new Element("enabled", attrs) };
}

/** XEP-0198 §4, §6: <failed/> with a stanza error condition. */
export function smFailed(condition: string, h?: number): Element {
  const failed = new Element("failed", { xmlns: NS_SM, ...(h === undefined ? {} : { h: String(h) }) });
  failed.c(condition, { xmlns: NS.stanzaErrors });
  return failed;
}

/** XEP-0198 §4: the text of the stream error for an 'h' above what was sent. */
export function handledCountTooHigh(h: number | string | undefined, sent: number): string {
  return `handled-count-too-high: h=${h}, sent ${sent}`;
}

/**
 * XEP-0198 §4, no silent loss: a stanza the client never acknowledged when its session ended.
 * Messages are routed again (to another resource or to offline storage); requests bounce to
 * their senders.
 */
export async function handOnUndelivered(stanza: Element, router: Router): Promise<void> {
  const type = stanza.attrs.type;
  if (stanza.name === "message" && type !== "error") {
    await router.route(stanza);
  } else if (stanza.name === "iq" && (type === "get" || type === "set")) {
    router.bounce(stanza, new StanzaError("service-unavailable", "the recipient went away"));
  }
}
