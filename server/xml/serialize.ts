/**
 * Writing XML onto an XMPP stream: the stream header and close tag, and stanzas.
 *
 * We do not use ltx's `toString()`: it escapes neither tab, LF nor CR in attribute values (a parser
 * turns them into spaces, XML 1.0 §3.3.3) nor CR in text (line-end handling turns it into LF, §2.11),
 * and it writes characters XML forbids (U+0000-U+001F except tab/LF/CR, unpaired surrogates, U+FFFE,
 * U+FFFF), which would make the peer close the stream with <not-well-formed/>. Here those are
 * replaced by U+FFFD: a stanza built from device data must never break the stream it is sent on.
 *
 * Stanzas are held without a default xmlns (DESIGN.md §3): a top-level element without `xmlns` is
 * written as is and takes the stream's content namespace; a top-level `xmlns` of jabber:client or
 * jabber:server (or the stream's own content namespace) is dropped so the stanza takes the namespace
 * of the stream it is written to (RFC 6120 §4.8.3). A top-level element in the stream namespace, as
 * the parser delivers `<stream:features>`, is written with the `stream:` prefix of the header.
 *
 * References: RFC 6120 §4.2 (stream header), §4.4 (closing), §4.8 (namespaces), §11.1 (restricted
 * XML), §11.6 (UTF-8); XML 1.0 §2.2 (Char), §2.4 (character data), §3.3.3 (attribute-value
 * normalisation).
 */
import type { Element } from "ltx";
import { NS } from "./namespaces.ts";

export interface StreamHeaderOptions {
  from?: string;
  to?: string;
  id?: string;
  /** "1.0" for RFC 6120 streams (§4.7.5). Omitted when undefined. */
  version?: string;
  /** xml:lang of the stream (§4.7.4). */
  lang?: string;
  /** The default namespace: jabber:client, jabber:server, jabber:component:accept. */
  contentNamespace: string;
  /** More prefixes to declare on the header, e.g. `{ db: "jabber:server:dialback" }`. */
  extraXmlns?: Record<string, string>;
}

/** RFC 6120 §4.4 */
export const STREAM_CLOSE = "</stream:stream>";

const NCNAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

/** RFC 6120 §4.2, §4.7: `<?xml version='1.0'?><stream:stream xmlns=... xmlns:stream=... ...>`. */
export function streamHeader(opts: StreamHeaderOptions): string {
  let s = `<?xml version='1.0'?><stream:stream xmlns='${escapeAttr(opts.contentNamespace)}'`;
  s += ` xmlns:stream='${NS.stream}'`;
  if (opts.extraXmlns) {
    for (const prefix in opts.extraXmlns) {
      // A prefix comes from our code, but a bad one would corrupt the header for the whole stream.
      if (!NCNAME.test(prefix) || prefix === "stream" || prefix.toLowerCase().startsWith("xml")) {
        throw new Error(`invalid namespace prefix: ${prefix}`);
      }
      s += ` xmlns:${prefix}='${escapeAttr(opts.extraXmlns[prefix]!)}'`;
    }
  }
  if (opts.from !== undefined) s += ` from='${escapeAttr(opts.from)}'`;
  if (opts.to !== undefined) s += ` to='${escapeAttr(opts.to)}'`;
  if (opts.id !== undefined) s += ` id='${escapeAttr(opts.id)}'`;
  if (opts.version !== undefined) s += ` version='${escapeAttr(opts.version)}'`;
  if (opts.lang !== undefined) s += ` xml:lang='${escapeAttr(opts.lang)}'`;
  return s + ">";
}

/**
 * A top-level element as it goes on the wire of a stream whose default namespace is
 * `contentNamespace` (jabber:client and jabber:server are always treated as content namespaces).
 */
export function serializeStanza(el: Element, contentNamespace?: string): string {
  const xmlns = el.attrs.xmlns;
  if (xmlns === NS.stream && !el.name.includes(":")) {
    return writeElement(el, `stream:${el.name}`, true, undefined, NS.stream);
  }
  const drop =
    xmlns !== undefined &&
    (xmlns === NS.client ||
      xmlns === NS.server ||
      (contentNamespace !== undefined && xmlns === contentNamespace));
  return writeElement(el, el.name, drop, undefined, undefined);
}

/**
 * `addXmlns` is written as the element's `xmlns`. `childNs`: when an element is written with a
 * prefix instead of its `xmlns`, unprefixed children without their own `xmlns` were in that
 * namespace and must now say so.
 */
function writeElement(
  el: Element,
  name: string,
  dropXmlns: boolean,
  addXmlns: string | undefined,
  childNs: string | undefined,
): string {
  let s = `<${name}`;
  const attrs = el.attrs;
  if (addXmlns !== undefined) {
    s += ` xmlns="${escapeAttr(addXmlns)}"`;
    dropXmlns = true;
  }
  for (const key in attrs) {
    const v: unknown = attrs[key];
    if (v === undefined || v === null) continue;
    if (dropXmlns && key === "xmlns") continue;
    s += ` ${key}="${escapeAttr(typeof v === "string" ? v : String(v))}"`;
  }
  const children = el.children;
  if (children.length === 0) return `${s}/>`;
  s += ">";
  for (const child of children as unknown[]) {
    if (typeof child === "string") {
      s += escapeText(child);
    } else if (typeof child === "number") {
      s += String(child);
    } else if (child !== null && typeof child === "object") {
      const c = child as Element;
      const add = childNs !== undefined && c.attrs.xmlns === undefined && !c.name.includes(":");
      s += writeElement(c, c.name, false, add ? childNs : undefined, undefined);
    }
  }
  return `${s}</${name}>`;
}

// Per ASCII code: 0 = as is, 1 = escape or replace. Characters >= 0x80 are checked by range.
const TEXT_NEEDS = new Uint8Array(128);
const ATTR_NEEDS = new Uint8Array(128);
const TEXT_REPLACEMENT: string[] = [];
const ATTR_REPLACEMENT: string[] = [];
for (let c = 0; c < 0x20; c++) {
  TEXT_NEEDS[c] = ATTR_NEEDS[c] = 1;
  // XML 1.0 §2.2: no C0 control except tab, LF, CR is a Char, not even as a reference.
  TEXT_REPLACEMENT[c] = ATTR_REPLACEMENT[c] = "\uFFFD";
}
TEXT_NEEDS[0x09] = TEXT_NEEDS[0x0a] = 0;
TEXT_REPLACEMENT[0x0d] = "&#13;"; // §2.11: a literal CR would be read as LF
ATTR_REPLACEMENT[0x09] = "&#9;"; // §3.3.3: literal whitespace in a value is read as a space
ATTR_REPLACEMENT[0x0a] = "&#10;";
ATTR_REPLACEMENT[0x0d] = "&#13;";
for (const [ch, rep] of [
  ["&", "&amp;"],
  ["<", "&lt;"],
  [">", "&gt;"],
] as const) {
  const c = ch.charCodeAt(0);
  TEXT_NEEDS[c] = ATTR_NEEDS[c] = 1;
  TEXT_REPLACEMENT[c] = ATTR_REPLACEMENT[c] = rep;
}
ATTR_NEEDS[0x22] = ATTR_NEEDS[0x27] = 1;
ATTR_REPLACEMENT[0x22] = "&quot;";
ATTR_REPLACEMENT[0x27] = "&apos;";

/** Character data: escapes & < > and CR; replaces characters XML cannot carry by U+FFFD. */
export function escapeText(s: string): string {
  return escapeWith(s, TEXT_NEEDS, TEXT_REPLACEMENT);
}

/** An attribute value in either quote style; also keeps tab, LF and CR as references. */
export function escapeAttr(s: string): string {
  return escapeWith(s, ATTR_NEEDS, ATTR_REPLACEMENT);
}

function escapeWith(s: string, needs: Uint8Array, replacement: string[]): string {
  const n = s.length;
  let i = 0;
  // Fast path: most values need nothing.
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (needs[c] === 1) break;
    } else if (c >= 0xd800) {
      if (c <= 0xdbff) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
        break;
      }
      if (c <= 0xdfff || c >= 0xfffe) break;
    }
  }
  if (i === n) return s;
  let out = "";
  let last = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    let rep: string | undefined;
    if (c < 0x80) {
      if (needs[c] === 1) rep = replacement[c];
    } else if (c >= 0xd800) {
      if (c <= 0xdbff) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
        rep = "\uFFFD"; // unpaired high surrogate
      } else if (c <= 0xdfff || c >= 0xfffe) {
        rep = "\uFFFD"; // unpaired low surrogate, U+FFFE, U+FFFF
      }
    }
    if (rep !== undefined) {
      out += s.slice(last, i) + rep;
      last = i + 1;
    }
  }
  return out + s.slice(last);
}
