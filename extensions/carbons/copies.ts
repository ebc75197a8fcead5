/**
 * Which messages are carbon-copied, and the copies themselves.
 * References: XEP-0280 §6 (eligible messages, the urn:xmpp:carbons:rules:0 rules), §7 (received
 * copies), §8 (sent copies), §9 (<private/>), §11 (copies come from the user's bare JID);
 * XEP-0297 §3 (forwarding: the forwarded stanza keeps its own namespace); XEP-0334 §4 (<no-copy/>);
 * XEP-0085, XEP-0184, XEP-0333 (payloads used in instant messaging); XEP-0045 §7.5 (private
 * messages carry <x xmlns='…muc#user'/>).
 */
import { clone, Element } from "ltx";
import { NS } from "../../server/xml/namespaces.ts";

export const NS_CARBONS = "urn:xmpp:carbons:2";
/** XEP-0280 §6: advertised to say the server follows the copying rules below. */
export const NS_CARBONS_RULES = "urn:xmpp:carbons:rules:0";
export const NS_FORWARD = "urn:xmpp:forward:0";
const NS_HINTS = "urn:xmpp:hints";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";

/** XEP-0280 §6: payloads "typically used in IM": chat states, receipts, chat markers. */
const IM_PAYLOADS = new Set([
  "http://jabber.org/protocol/chatstates",
  "urn:xmpp:receipts",
  "urn:xmpp:chat-markers:0",
]);

export type Direction = "received" | "sent";

/** A carbon copy: <received/> or <sent/> from this namespace at the top of a message. */
export function isCopy(message: Element): boolean {
  return message
    .getChildElements()
    .some((c) => (c.name === "received" || c.name === "sent") && c.attrs.xmlns === NS_CARBONS);
}

export function isEligible(message: Element, direction: Direction): boolean {
  const children = message.getChildElements();
  const has = (name: string, xmlns: string) =>
    children.some((c) => c.name === name && c.attrs.xmlns === xmlns);
  // XEP-0280 §9: <private/> opts out; XEP-0334 §4: so does <no-copy/>.
  if (has("private", NS_CARBONS) || has("no-copy", NS_HINTS)) return false;
  // A copy is never copied again (it reaches us only if a session holding it ended).
  if (isCopy(message)) return false;
  const type = message.attrs.type ?? "normal";
  // XEP-0280 §6: groupchat belongs to the room; errors would need tracking of the messages they
  // answer, which the XEP itself calls inappropriate for most implementations.
  if (type === "groupchat" || type === "error") return false;
  // XEP-0280 §6: private messages from a MUC occupant are not copied (clients not in the room
  // cannot make sense of them); the user's own outgoing ones are.
  if (direction === "received" && children.some((c) => c.name === "x" && c.attrs.xmlns === NS_MUC_USER)) {
    return false;
  }
  if (type === "chat") return true;
  if (type === "normal" && children.some((c) => c.name === "body" && c.attrs.xmlns === undefined))
    return true;
  return children.some((c) => IM_PAYLOADS.has(c.attrs.xmlns ?? ""));
}

/**
 * XEP-0280 §7/§8: the copy for one resource: from the user's bare JID, to that resource, the
 * original's type kept, the original inside <received|sent><forwarded/></…>.
 */
export function carbonCopy(direction: Direction, original: Element, userBare: string, to: string): Element {
  const inner = clone(original);
  // XEP-0297 §3: the forwarded stanza is written with its own namespace; at the top level of a
  // stream it had none (it took the stream's).
  inner.attrs.xmlns = NS.client;
  const attrs: Record<string, string> = { from: userBare, to };
  if (original.attrs.type) attrs.type = original.attrs.type;
  const copy = new Element("message", attrs);
  copy.c(direction, { xmlns: NS_CARBONS }).c("forwarded", { xmlns: NS_FORWARD }).cnode(inner);
  return copy;
}
