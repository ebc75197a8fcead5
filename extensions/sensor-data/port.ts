/**
 * What an IoT client codec needs from its XMPP connection, so the same read-out and control
 * helpers run over firmware/'s client, a test adapter or anything else.
 * References: RFC 6120 §8.2.3 (iq: every get/set gets exactly one result or error).
 */
import type { Element } from "ltx";

export interface StanzaPort {
  /**
   * Sends an iq get/set and resolves with the result iq; rejects on an error iq with an error
   * whose StanzaError condition is visible (a StanzaError, or an error carrying `condition`).
   */
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  send(stanza: Element): void;
  /** Every inbound stanza; returns the unsubscribe function. */
  onStanza(listener: (stanza: Element) => void): () => void;
}
