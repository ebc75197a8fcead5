/**
 * What the device sends while it is not connected: a bounded queue (oldest dropped first, with a
 * warning) and the last broadcast presence, which a new session must be told again.
 * References: RFC 6121 §4.2 (initial presence), §4.4 (a client's broadcast presence); XEP-0198 §6
 * (after a failed resumption the server has forgotten our presence).
 */
import { Element } from "ltx";
import type { Log } from "./connection.ts";

/** A presence to everyone (no `to`), available: what the server must be told again after a new login. */
export function isBroadcastPresence(el: Element): boolean {
  return el.name === "presence" && el.attrs.to === undefined && el.attrs.type === undefined;
}

export class Outbox {
  readonly #queue: Element[] = [];
  readonly #max: number;
  readonly #log: Log;
  #presence: Element | undefined;

  constructor(max: number, log: Log) {
    this.#max = max;
    this.#log = log;
  }

  /** Notes a stanza the application sends (queued or not), remembering its broadcast presence. */
  noteSent(stanza: Element): void {
    if (isBroadcastPresence(stanza)) this.#presence = stanza;
  }

  queue(stanza: Element): void {
    this.#queue.push(stanza);
    if (this.#queue.length > this.#max) {
      const dropped = this.#queue.shift()!;
      this.#log("warn", "offline queue full: oldest stanza dropped", { name: dropped.name, max: this.#max });
    }
  }

  /** Everything queued, oldest first; the queue is empty afterwards. */
  drain(): Element[] {
    return this.#queue.splice(0);
  }

  /** The presence to send on a new session: the application's last one, or a plain available. */
  initialPresence(): Element {
    return this.#presence ?? new Element("presence");
  }
}
