/**
 * Which messages go to offline storage, the XEP-0203 stamp they get, and turning stored text back
 * into stanzas.
 * References: XEP-0160 §3 (handling of message types), XEP-0085 §5.5 (standalone chat states are
 * not stored), XEP-0334 §4 (no-store hint), XEP-0203 §3 (delay element, 'from' = the entity that
 * delayed it), XEP-0082 §3.2 (DateTime), XEP-0280 §11 (carbon copies come from the user's own bare
 * JID).
 */
import { clone, Element } from "ltx";
import { NS } from "../../server/xml/namespaces.ts";
import { serializeStanza } from "../../server/xml/serialize.ts";
import { StreamParser } from "../../server/xml/stream-parser.ts";

const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";
const NS_HINTS = "urn:xmpp:hints";
const NS_CARBONS = "urn:xmpp:carbons:2";

/** XEP-0160 §3: only normal (the default) and chat messages are stored. */
export function isStorableType(message: Element): boolean {
  const type = message.attrs.type ?? "normal";
  return type === "normal" || type === "chat";
}

export type Disposition = "store" | "drop" | "refuse";

/**
 * What to do with a normal/chat message for a user who cannot take it now: "store"; "drop"
 * quietly (a typing notification, or one of the user's own carbon copies coming back from an
 * ended session); or "refuse" (the sender asked for no storage: the RFC 6121 default answer).
 */
export function disposition(message: Element, recipientBare: string): Disposition {
  const children = message.getChildElements();
  // XEP-0280: a carbon copy is addressed from the user's bare JID to one resource; if that
  // resource is gone the copy is worthless elsewhere and must not pile up in storage.
  if (
    message.attrs.from === recipientBare &&
    children.some((c) => (c.name === "received" || c.name === "sent") && c.attrs.xmlns === NS_CARBONS)
  ) {
    return "drop";
  }
  // XEP-0334 §4: <no-store/> asks servers not to keep the message, not even for later delivery.
  if (children.some((c) => c.name === "no-store" && c.attrs.xmlns === NS_HINTS)) return "refuse";
  // XEP-0160 §3 and XEP-0085 §5.5: a chat state notification without content is not stored
  // (only <thread/> may accompany it, XEP-0085 §5.4); it is stale by the time anyone reads it.
  const hasChatState = children.some((c) => c.attrs.xmlns === NS_CHATSTATES);
  const hasContent = children.some(
    (c) => c.attrs.xmlns !== NS_CHATSTATES && !(c.name === "thread" && c.attrs.xmlns === undefined),
  );
  if (hasChatState && !hasContent) return "drop";
  return "store";
}

/**
 * The text to store: the message with a delay stamp from this server (XEP-0160 §2 recommends it,
 * XEP-0203 §3 defines it). A stamp that claims to come from this server but arrived from outside
 * is a forgery and is removed; one we added before (the message comes back from a session that
 * ended, origin "internal") is kept, so the stamp says when the message was first stored.
 */
export function stampedXml(message: Element, domain: string, trustedOrigin: boolean, now: Date): string {
  const copy = new Element(message.name, { ...message.attrs });
  let stamped = false;
  for (const child of message.children) {
    if (typeof child !== "string" && child.name === "delay" && child.attrs.xmlns === NS.delay) {
      if (child.attrs.from === domain) {
        if (!trustedOrigin) continue;
        stamped = true;
      }
    }
    // A copy, so the original keeps its children (cnode would re-parent them).
    copy.cnode(typeof child === "string" ? child : clone(child));
  }
  if (!stamped) {
    // XEP-0082 §3.2: UTC with a 'Z'; milliseconds are allowed.
    copy.c("delay", { xmlns: NS.delay, from: domain, stamp: now.toISOString() }).t("Offline Storage");
  }
  return serializeStanza(copy);
}

const STREAM_OPEN = `<stream:stream xmlns='${NS.client}' xmlns:stream='${NS.stream}' version='1.0'>`;
const OPEN_BYTES = Buffer.from(STREAM_OPEN);

/**
 * Parses one stored stanza with the same strict parser the streams use, so it comes back in the
 * canonical form the router works with (no default xmlns on the stanza). Throws if the text is not
 * exactly one stanza.
 */
export function parseStored(xml: string): Element {
  let result: Element | undefined;
  let failure: Error | undefined;
  const parser = new StreamParser(
    {
      onStreamStart: () => {},
      onStanza: (el) => {
        if (result) failure ??= new Error("more than one element stored in one row");
        result = el;
      },
      onStreamEnd: () => {},
      onError: (err) => {
        failure ??= err;
      },
    },
    // What was stored passed the stream limits once; the delay stamp adds a little.
    { maxStanzaBytes: Buffer.byteLength(xml) + 1, maxDepth: 64 },
  );
  parser.write(OPEN_BYTES);
  parser.write(Buffer.from(xml));
  parser.end();
  if (failure) throw failure;
  if (!result) throw new Error("no stanza in stored text");
  return result;
}
