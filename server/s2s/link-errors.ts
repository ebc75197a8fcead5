/**
 * How an outgoing s2s link that could not be set up reports it: a stanza error for the stanzas
 * that waited for it, and a label for metrics and back-off.
 * References: RFC 6120 §8.3.3.15 (remote-server-not-found), §8.3.3.16 (remote-server-timeout).
 */
import { StanzaError } from "../xml/errors.ts";
import type { FailureKind } from "./link-metrics.ts";

/** A stanza error and a label, for a link that could not be set up. */
export interface Problem {
  readonly kind: FailureKind;
  readonly error: StanzaError;
}

/** RFC 6120 §8.3.3.15: the remote domain cannot be reached (or not as our policy requires). */
export function notFound(text: string): StanzaError {
  return new StanzaError("remote-server-not-found", text);
}

/** RFC 6120 §8.3.3.16: the remote domain was not reached (or did not finish) in time. */
export function timedOut(text: string): StanzaError {
  return new StanzaError("remote-server-timeout", text);
}
