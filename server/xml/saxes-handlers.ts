/**
 * The saxes side of StreamParser: the strict tokenizer it runs on, a fast way to install and swap
 * saxes event handlers, and the mapping of saxes error messages to stream error conditions.
 *
 * References: RFC 6120 §4.9.3 (stream error conditions), §11.1 (restricted XML); XML 1.0 (saxes
 * is forced to it).
 */

import { SaxesParser } from "saxes";
import type { StreamErrorCondition } from "./errors.ts";

export type Sax = SaxesParser<{ xmlns: true; forceXMLVersion: true; defaultXMLVersion: "1.0" }>;

/**
 * saxes keeps one handler per event in a property (`commentHandler`, ...). Its `on()` stores it
 * under a computed key, and V8 turns an object that gains more than a few properties that way into
 * a slow dictionary: with the nine handlers we need, saxes ran 4x slower. Assigning the same
 * properties by name keeps the object fast. The names are private to saxes 6, so they are checked
 * once below; if they ever change we fall back to `on()`/`off()` (correct, just slower).
 */
interface HandlerSlots {
  textHandler: unknown;
  xmldeclHandler: unknown;
  openTagStartHandler: unknown;
  openTagHandler: unknown;
  closeTagHandler: unknown;
  cdataHandler: unknown;
  commentHandler: unknown;
  piHandler: unknown;
  doctypeHandler: unknown;
  errorHandler: unknown;
}

export type SaxHandlers = { [K in keyof HandlerSlots]: ((...args: never[]) => void) | undefined };

const EVENT_OF_SLOT: Record<keyof HandlerSlots, Parameters<Sax["on"]>[0]> = {
  textHandler: "text",
  xmldeclHandler: "xmldecl",
  openTagStartHandler: "opentagstart",
  openTagHandler: "opentag",
  closeTagHandler: "closetag",
  cdataHandler: "cdata",
  commentHandler: "comment",
  piHandler: "processinginstruction",
  doctypeHandler: "doctype",
  errorHandler: "error",
};

const NAMED_SLOTS_WORK: boolean = Object.entries(EVENT_OF_SLOT).every(([slot, event]) => {
  const probe = new SaxesParser({ xmlns: true });
  const fn = (): void => {};
  probe.on(event, fn);
  return (probe as unknown as Record<string, unknown>)[slot] === fn;
});

/** A namespace-aware saxes parser for one stream, with `h` installed. */
export function createStrictSax(h: SaxHandlers): Sax {
  // XML 1.0 only, whatever the declaration says: XML 1.1 would admit C0 controls by reference.
  const sax: Sax = new SaxesParser({ xmlns: true, forceXMLVersion: true, defaultXMLVersion: "1.0" });
  installHandlers(sax, h);
  return sax;
}

function installHandlers(sax: Sax, h: SaxHandlers): void {
  if (!NAMED_SLOTS_WORK) {
    for (const slot of Object.keys(EVENT_OF_SLOT) as (keyof HandlerSlots)[]) setViaOn(sax, slot, h[slot]);
    return;
  }
  const s = sax as unknown as HandlerSlots;
  s.textHandler = h.textHandler;
  s.xmldeclHandler = h.xmldeclHandler;
  s.openTagStartHandler = h.openTagStartHandler;
  s.openTagHandler = h.openTagHandler;
  s.closeTagHandler = h.closeTagHandler;
  s.cdataHandler = h.cdataHandler;
  s.commentHandler = h.commentHandler;
  s.piHandler = h.piHandler;
  s.doctypeHandler = h.doctypeHandler;
  s.errorHandler = h.errorHandler;
}

function setViaOn(sax: Sax, slot: keyof HandlerSlots, fn: ((...args: never[]) => void) | undefined): void {
  const event = EVENT_OF_SLOT[slot];
  if (fn === undefined) sax.off(event);
  else sax.on(event, fn as never);
}

/**
 * Switch character data collection on or off. Without a text handler saxes does not accumulate
 * character data, so whitespace between stanzas never piles up (RFC 6120 §4.6.1).
 */
export function setTextHandler(sax: Sax, fn: ((text: string) => void) | undefined): void {
  if (NAMED_SLOTS_WORK) (sax as unknown as HandlerSlots).textHandler = fn;
  else setViaOn(sax, "textHandler", fn);
}

/** Map a saxes message to an RFC 6120 §4.9.3 condition. */
export function classifySaxError(message: string, inProlog: boolean): StreamErrorCondition {
  // RFC 6120 §11.1: only the five predefined entities; a DOCTYPE anywhere is restricted.
  if (message.includes("undefined entity") || message.includes("doctype")) return "restricted-xml";
  // RFC 6120 §4.9.3.2: an undeclared prefix on the stream header itself.
  if (inProlog && message.includes("unbound namespace prefix")) return "bad-namespace-prefix";
  return "not-well-formed"; // RFC 6120 §4.9.3.13
}
