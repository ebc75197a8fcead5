/**
 * XEP-0198 stream management state of one client session: counts of handled stanzas both ways,
 * the queue of stanzas sent but not yet acknowledged, and the registry of resumable sessions.
 * The c2s stream drives it; this file holds the arithmetic so it can be tested on its own.
 * References: XEP-0198 §4 (enabling), §4 ("h" counters, 2^32 wrap), §5 (acks), §6 (resumption),
 * §4 "handled-count-too-high".
 */
import type { Element } from "ltx";

export const NS_SM = "urn:xmpp:sm:3";

/** XEP-0198 §5: 'h' is an unsigned 32-bit integer that wraps. */
const MOD = 2 ** 32;

export interface Unacked {
  readonly stanza: Element;
  /** When it was first sent (for XEP-0203 delay stamps on redelivery). */
  readonly sentAt: number;
}

export class SmState {
  readonly id: string;
  readonly resumable: boolean;
  /** Stanzas received from the client since <enable/> (XEP-0198 §4, our 'h'). */
  inbound = 0;
  /** Stanzas sent to the client since <enable/>, acknowledged or not. */
  private outbound = 0;
  /** The client's last acknowledged count. */
  private acked = 0;
  private readonly queue: Unacked[] = [];

  constructor(id: string, resumable: boolean) {
    this.id = id;
    this.resumable = resumable;
  }

  received(): void {
    this.inbound = (this.inbound + 1) % MOD;
  }

  sent(stanza: Element): void {
    this.outbound = (this.outbound + 1) % MOD;
    this.queue.push({ stanza, sentAt: Date.now() });
  }

  get unackedCount(): number {
    return this.queue.length;
  }

  /**
   * Applies the client's 'h'. Returns false when it acknowledges more than was sent
   * (XEP-0198 §4: the stream then ends with undefined-condition / handled-count-too-high).
   */
  ack(h: number): boolean {
    if (!Number.isInteger(h) || h < 0 || h >= MOD) return false;
    const newlyAcked = (h - this.acked + MOD) % MOD;
    if (newlyAcked > this.queue.length) return false;
    this.queue.splice(0, newlyAcked);
    this.acked = h;
    return true;
  }

  /** The sent count the client may see in <handled-count-too-high send-count=…/>. */
  get sentCount(): number {
    return this.outbound;
  }

  /** Unacknowledged stanzas, oldest first, to resend after resumption (they stay queued). */
  pending(): readonly Unacked[] {
    return this.queue;
  }

  /** Removes and returns every stanza still unacknowledged (the session ends without resuming). */
  takeUnacked(): Unacked[] {
    return this.queue.splice(0);
  }
}

/** Parses an 'h' attribute (a decimal 32-bit unsigned integer). */
export function parseH(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,10}$/.test(value)) return undefined;
  const n = Number(value);
  return n < MOD ? n : undefined;
}
