/**
 * Small helpers on stanzas (ltx Elements) shared by streams, router and modules.
 * References: RFC 6120 §8.1 (common attributes), §8.2.3 (iq semantics), §8.3.1 (error replies).
 */
import { Element } from "ltx";
import type { StanzaError } from "./errors.ts";
import { NS } from "./namespaces.ts";

export type StanzaKind = "message" | "presence" | "iq";

export function stanzaKind(el: Element): StanzaKind | undefined {
  const name = el.name;
  return name === "message" || name === "presence" || name === "iq" ? name : undefined;
}

/**
 * RFC 6120 §8.3.1: the error reply swaps from/to, keeps id and type="error", and includes the
 * original payload only where it helps (we keep it for message/presence, drop it for iq results
 * larger than needed: the original child of an iq is included as the spec suggests).
 */
export function errorReply(stanza: Element, error: StanzaError, by?: string): Element {
  const attrs: Record<string, string> = { type: "error" };
  if (stanza.attrs.id !== undefined) attrs.id = stanza.attrs.id;
  if (stanza.attrs.to) attrs.from = stanza.attrs.to;
  if (stanza.attrs.from) attrs.to = stanza.attrs.from;
  const reply = new Element(stanza.name, attrs);
  // RFC 6120 §8.3.1: the entity MAY include the original XML; we include the first child for
  // iq (so the requester sees which query failed) but never the body of a message (privacy).
  if (stanza.name === "iq") {
    const query = stanza.getChildElements()[0];
    if (query) reply.cnode(shallowCopy(query));
  }
  reply.cnode(error.toElement(by));
  return reply;
}

/** RFC 6120 §8.2.3: a result iq addressed back to the requester. */
export function iqResult(iq: Element, payload?: Element): Element {
  const attrs: Record<string, string> = { type: "result", id: iq.attrs.id ?? "" };
  if (iq.attrs.to) attrs.from = iq.attrs.to;
  if (iq.attrs.from) attrs.to = iq.attrs.from;
  const reply = new Element("iq", attrs);
  if (payload) reply.cnode(payload);
  return reply;
}

/** An error stanza must never be answered with another error (RFC 6120 §8.3.1). */
export function isErrorStanza(el: Element): boolean {
  return el.attrs.type === "error";
}

/** A copy of an element's name and attributes without its children. */
export function shallowCopy(el: Element): Element {
  return new Element(el.name, { ...el.attrs });
}

/** RFC 6120 §8.3.3: the condition element inside <error/>, if any. */
export function errorCondition(stanza: Element): string | undefined {
  const error = stanza.getChild("error");
  return error?.getChildElements().find((c) => c.attrs.xmlns === NS.stanzaErrors && c.name !== "text")?.name;
}
