/**
 * StreamParser: turns the untrusted bytes of one XMPP stream into a stream header, top-level
 * elements (stanzas and nonzas) as ltx Elements in a canonical form, and a stream end.
 *
 * This is the security boundary for everything a peer sends, so it is strict: input must be valid
 * UTF-8, well-formed and namespace-well-formed XML without DTDs, comments, processing instructions or
 * entity references other than the five predefined ones; sizes and depth are bounded while the data
 * is still arriving, so no peer can make us buffer more than a stanza's worth of input.
 *
 * Tokenising is done by saxes (namespaces on); ltx's own parser is too lenient (DESIGN.md §6).
 *
 * Canonical form of a delivered element: `name` is the local name without prefix; an element whose
 * namespace differs from its parent's carries an explicit `xmlns` (for a top-level element the
 * "parent" namespace is the stream's content namespace, so a stanza in jabber:client has no `xmlns`,
 * DESIGN.md §3); `xml:*` attributes keep that name; other namespaced attributes keep their prefix and
 * get the matching `xmlns:prefix` on the same element; every other prefix declaration is dropped.
 * Stream-level elements come out the same way: `<stream:features>` is `features` with
 * `xmlns="http://etherx.jabber.org/streams"`; `<db:result>` is `result` with
 * `xmlns="jabber:server:dialback"`.
 *
 * References: RFC 6120 §4.2-§4.4 (opening, restarting and closing streams), §4.6.1 (whitespace
 * keepalives), §4.8 (stream and content namespaces), §4.9.3 (stream error conditions), §5.4.3.3 and
 * §6.4.6 (stream restart after STARTTLS and SASL), §11.1 (restricted XML), §11.6 (UTF-8); XML 1.0
 * §2.2 (characters), §4.1 (references); Namespaces in XML 1.0.
 */

import { TextDecoder } from "node:util";
import { Element } from "ltx";
import { SaxesParser, type SaxesStartTagNS, type SaxesTagNS, type XMLDecl } from "saxes";
import { StreamError, type StreamErrorCondition } from "./errors.ts";
import { NS } from "./namespaces.ts";

export interface StreamParserHandler {
  /**
   * The stream header (`<stream:stream>`) was read and checked. `attrs` holds its attributes except
   * namespace declarations (`xml:lang` under that name); `declaredNamespaces` maps each prefix
   * declared on the header to its namespace ("" is the default namespace).
   */
  onStreamStart(attrs: Record<string, string>, declaredNamespaces: Record<string, string>): void;
  /** A complete top-level element (stanza or nonza such as `<starttls/>`), in canonical form. */
  onStanza(el: Element): void;
  /** The peer closed its stream (`</stream:stream>`). Nothing more is parsed until reset(). */
  onStreamEnd(): void;
  /** Input violated the rules; nothing more is parsed until reset(). Send the error and close. */
  onError(err: StreamError): void;
}

export interface StreamParserOptions {
  /** The default namespace the stream header must declare (RFC 6120 §4.8.2). jabber:client by default. */
  contentNamespace?: string;
  /** Largest top-level element, in bytes from its `<` to its final `>`. 256 KiB by default. */
  maxStanzaBytes?: number;
  /** Deepest nesting, the top-level element counting as 1. 32 by default. */
  maxDepth?: number;
  /** Most bytes before the stream header is complete (XML declaration included). 8 KiB by default. */
  maxHeaderBytes?: number;
  /**
   * Most bytes between top-level elements that are not plain whitespace keepalives, e.g. an
   * unfinished start tag name. Whitespace never counts. 8 KiB by default.
   */
  maxIdleBytes?: number;
}

const DEFAULTS = {
  maxStanzaBytes: 256 * 1024,
  maxDepth: 32,
  maxHeaderBytes: 8 * 1024,
  maxIdleBytes: 8 * 1024,
};

type Sax = SaxesParser<{ xmlns: true; forceXMLVersion: true; defaultXMLVersion: "1.0" }>;

/** Thrown from inside saxes callbacks to stop it in the middle of a chunk. Never escapes write(). */
const ABORT: Error = new Error("stream parsing aborted");

/** Waiting for the stream header. */
const PROLOG = 0;
/** Header read; top-level elements flow. */
const OPEN = 1;
/** Stream closed by the peer, failed, or end() called: input is ignored until reset(). */
const DONE = 2;
type Phase = typeof PROLOG | typeof OPEN | typeof DONE;

const LT = 0x3c;

function isXmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

export class StreamParser {
  private readonly handler: StreamParserHandler;
  private readonly contentNs: string;
  private readonly maxStanzaBytes: number;
  private readonly maxDepth: number;
  private readonly maxHeaderBytes: number;
  private readonly maxIdleBytes: number;

  private sax!: Sax;
  private decoder!: TextDecoder;
  private phase: Phase = PROLOG;
  /** Bumped by reset() and end() so a callback can tell that the parser it runs in is stale. */
  private generation = 0;
  /** An exception thrown by a handler callback, re-thrown by write() once saxes is unwound. */
  private callbackError: unknown = undefined;

  // Mapping saxes positions (UTF-16 indexes into everything fed since the last reset) to bytes.
  private str = "";
  private strCharBase = 0;
  private strByteBase = 0;
  private strAscii = true;
  private cursorChar = 0;
  private cursorByte = 0;
  private charEnd = 0;
  private byteEnd = 0;
  /** Last character of the previous chunk while still in the prolog, to spot a split "<!". */
  private prologTail = "";

  // The element being assembled.
  private readonly stack: Element[] = [];
  private readonly nsStack: string[] = [];
  private inStanza = false;
  private stanzaStartByte = 0;
  /** A completed top-level element, delivered once saxes has confirmed the end tag matched. */
  private pendingStanza: Element | undefined = undefined;
  private pendingEnd = false;

  // Between top-level elements: everything since idleStart is whitespace while idleClean holds.
  private idleClean = true;
  private idleStartChar = 0;
  private idleStartByte = 0;

  constructor(handler: StreamParserHandler, options: StreamParserOptions = {}) {
    this.handler = handler;
    this.contentNs = options.contentNamespace ?? NS.client;
    this.maxStanzaBytes = options.maxStanzaBytes ?? DEFAULTS.maxStanzaBytes;
    this.maxDepth = Math.max(1, options.maxDepth ?? DEFAULTS.maxDepth);
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes;
    this.maxIdleBytes = options.maxIdleBytes ?? DEFAULTS.maxIdleBytes;
    this.init();
  }

  /** Feed bytes as they arrive from the transport, in any chunking. */
  write(chunk: Uint8Array): void {
    if (this.phase === DONE) return;
    let str: string;
    try {
      str = this.decoder.decode(chunk, { stream: true });
    } catch {
      // RFC 6120 §11.6: the stream is UTF-8; §4.9.3.22 names this condition for input that
      // violates the rules of UTF-8 (overlong forms, surrogates, stray continuation bytes, ...).
      this.fail("unsupported-encoding", "invalid UTF-8");
      this.rethrowCallbackError();
      return;
    }
    if (str.length > 0) this.feed(str);
    this.rethrowCallbackError();
  }

  /** The transport's read side ended. Any unfinished stanza is dropped; nothing is reported. */
  end(): void {
    this.phase = DONE;
    this.generation++;
    this.stack.length = 0;
    this.nsStack.length = 0;
    this.pendingStanza = undefined;
    this.pendingEnd = false;
  }

  /**
   * Expect a new stream header on the same transport (RFC 6120 §5.4.3.3 after TLS, §6.4.6 after
   * SASL success, §4.3.3). When called from inside a callback, the rest of the chunk being parsed is
   * discarded: bytes that followed `<starttls/>` in the same read were sent before TLS and must not
   * be interpreted as part of the new stream.
   */
  reset(): void {
    this.generation++;
    this.init();
  }

  private init(): void {
    // ignoreBOM keeps a U+FEFF in the output so character and byte positions stay in step; saxes
    // itself skips a leading byte order mark.
    this.decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    this.sax = this.createSax();
    this.phase = PROLOG;
    this.callbackError = undefined;
    this.str = "";
    this.strCharBase = 0;
    this.strByteBase = 0;
    this.strAscii = true;
    this.cursorChar = 0;
    this.cursorByte = 0;
    this.charEnd = 0;
    this.byteEnd = 0;
    this.prologTail = "";
    this.stack.length = 0;
    this.nsStack.length = 0;
    this.inStanza = false;
    this.stanzaStartByte = 0;
    this.pendingStanza = undefined;
    this.pendingEnd = false;
    this.idleClean = true;
    this.idleStartChar = 0;
    this.idleStartByte = 0;
  }

  private createSax(): Sax {
    // XML 1.0 only, whatever the declaration says: XML 1.1 would admit C0 controls by reference.
    const sax: Sax = new SaxesParser({ xmlns: true, forceXMLVersion: true, defaultXMLVersion: "1.0" });
    // No text handler outside top-level elements: saxes then does not accumulate character data,
    // so whitespace keepalives never pile up (RFC 6120 §4.6.1). It is switched on per stanza.
    installHandlers(sax, {
      textHandler: undefined,
      xmldeclHandler: this.onXmlDecl,
      openTagStartHandler: this.onOpenTagStart,
      openTagHandler: this.onOpenTag,
      closeTagHandler: this.onCloseTag,
      cdataHandler: this.onCData,
      commentHandler: this.onComment,
      piHandler: this.onProcessingInstruction,
      doctypeHandler: this.onDoctype,
      errorHandler: this.onSaxError,
    });
    return sax;
  }

  private feed(str: string): void {
    const bytes = Buffer.byteLength(str, "utf8");
    this.str = str;
    this.strCharBase = this.charEnd;
    this.strByteBase = this.byteEnd;
    this.strAscii = bytes === str.length;
    this.cursorChar = 0;
    this.cursorByte = 0;
    this.charEnd += str.length;
    this.byteEnd += bytes;

    const sax = this.sax;
    try {
      sax.write(str);
    } catch (err) {
      if (err !== ABORT) {
        // A bug (ours, or an invariant saxes checks): close this stream, never crash the server.
        this.fail("internal-server-error", err instanceof Error ? err.message : String(err));
      }
      return;
    }
    if (sax !== this.sax || this.phase === DONE) return;
    if (!this.flushPending()) return;
    this.checkLimitsAfterWrite(str);
  }

  /** Limits that must hold whenever we wait for more input, so nothing grows without bound. */
  private checkLimitsAfterWrite(str: string): void {
    if (this.phase === PROLOG) {
      if (this.byteEnd > this.maxHeaderBytes) {
        this.fail("policy-violation", `stream header larger than ${this.maxHeaderBytes} bytes`);
        return;
      }
      // RFC 6120 §11.1: before the root element, "<!" can only start a DOCTYPE or a comment, both
      // forbidden. Refuse it now rather than after saxes has buffered the whole declaration.
      const seen = this.prologTail + str;
      if (seen.includes("<!")) {
        this.fail("restricted-xml", "DTDs and comments are not allowed");
        return;
      }
      this.prologTail = str.slice(-1);
      return;
    }
    if (this.inStanza) {
      if (this.byteEnd - this.stanzaStartByte > this.maxStanzaBytes) {
        this.fail("policy-violation", `stanza larger than ${this.maxStanzaBytes} bytes`);
      }
      return;
    }
    if (this.idleClean) {
      // Skip whitespace keepalives; they never count against the limit.
      let i = Math.max(0, this.idleStartChar - this.strCharBase);
      while (i < str.length && isXmlSpace(str.charCodeAt(i))) i++;
      this.idleStartChar = this.strCharBase + i;
      this.idleStartByte = this.bytePos(this.idleStartChar);
      if (i < str.length) {
        this.idleClean = false;
        if (str.charCodeAt(i) !== LT) {
          this.fail("bad-format", "character data between top-level elements");
          return;
        }
      }
    }
    if (this.byteEnd - this.idleStartByte > this.maxIdleBytes) {
      this.fail("policy-violation", `more than ${this.maxIdleBytes} bytes between stanzas`);
    }
  }

  /** Byte offset (since the last reset) of a saxes position in the current chunk. */
  private bytePos(charPos: number): number {
    const rel = charPos - this.strCharBase;
    // rel < 0 only for a CR that saxes carried over from the previous chunk: one byte each.
    if (rel <= 0 || this.strAscii) return this.strByteBase + rel;
    if (rel < this.cursorChar) {
      this.cursorChar = 0;
      this.cursorByte = 0;
    }
    const s = this.str;
    let bytes = this.cursorByte;
    for (let i = this.cursorChar; i < rel; i++) {
      const c = s.charCodeAt(i);
      // UTF-8 length per UTF-16 unit: a surrogate pair is 4 bytes, 2 per half.
      bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
    }
    this.cursorChar = rel;
    this.cursorByte = bytes;
    return this.strByteBase + bytes;
  }

  /**
   * Report an error once and stop. Returns ABORT so callers inside saxes callbacks can
   * `throw this.fail(...)` to stop saxes in the middle of the chunk.
   */
  private fail(condition: StreamErrorCondition, text: string): Error {
    if (this.phase === DONE) return ABORT;
    this.phase = DONE;
    this.stack.length = 0;
    this.nsStack.length = 0;
    this.pendingStanza = undefined;
    this.pendingEnd = false;
    this.invoke(() => this.handler.onError(new StreamError(condition, text)));
    return ABORT;
  }

  /** Call a handler callback; false if parsing must stop (callback threw, reset, ended, failed). */
  private invoke(fn: () => void): boolean {
    const generation = this.generation;
    try {
      fn();
    } catch (err) {
      this.callbackError ??= err;
      this.phase = DONE;
      return false;
    }
    return generation === this.generation && this.phase !== DONE;
  }

  private rethrowCallbackError(): void {
    const err = this.callbackError;
    if (err !== undefined) {
      this.callbackError = undefined;
      throw err;
    }
  }

  /**
   * Deliver what the previous close tag completed. saxes calls the close-tag handler before it
   * checks that the end tag's name matches (`<a>..</b>`), so we wait until it has moved on.
   */
  private flushPending(): boolean {
    const el = this.pendingStanza;
    if (el !== undefined) {
      this.pendingStanza = undefined;
      const generation = this.generation;
      try {
        this.handler.onStanza(el);
      } catch (err) {
        this.callbackError ??= err;
        this.phase = DONE;
        return false;
      }
      if (generation !== this.generation || this.phase === DONE) return false;
    }
    if (this.pendingEnd) {
      this.pendingEnd = false;
      this.phase = DONE;
      this.invoke(() => this.handler.onStreamEnd());
      return false;
    }
    return true;
  }

  // saxes callbacks (arrow properties: bound once, called per token).

  private readonly onXmlDecl = (decl: XMLDecl): void => {
    // RFC 6120 §11.6: UTF-8 is the only encoding.
    if (decl.encoding !== undefined && decl.encoding.toLowerCase() !== "utf-8") {
      throw this.fail("unsupported-encoding", `encoding ${decl.encoding} is not UTF-8`);
    }
  };

  private readonly onOpenTagStart = (tag: SaxesStartTagNS): void => {
    if (this.phase !== OPEN) return;
    if ((this.pendingStanza !== undefined || this.pendingEnd) && !this.flushPending()) throw ABORT;
    const depth = this.stack.length;
    const pos = this.sax.position;
    if (depth === 0) {
      if (this.idleClean) {
        // saxes has read "<", the name and one terminating character (CR LF counts as one).
        let lt = pos - tag.name.length - 2;
        const rel = lt - this.strCharBase;
        if (rel > 0 && this.str.charCodeAt(rel) !== LT) lt--;
        this.checkIdleText(lt);
        this.stanzaStartByte = this.bytePos(lt);
      } else {
        // The tail check after the previous write stopped at this element's "<" (anything else
        // in between, a comment or CDATA, would have raised an event).
        this.stanzaStartByte = this.idleStartByte;
      }
      this.inStanza = true;
      setTextHandler(this.sax, this.onText);
      return;
    }
    if (depth >= this.maxDepth) {
      throw this.fail("policy-violation", `elements nested deeper than ${this.maxDepth}`);
    }
    if (this.bytePos(pos) - this.stanzaStartByte > this.maxStanzaBytes) {
      throw this.fail("policy-violation", `stanza larger than ${this.maxStanzaBytes} bytes`);
    }
  };

  /** Only whitespace may separate top-level elements (RFC 6120 §4.6.1 keepalives). */
  private checkIdleText(toChar: number): void {
    const s = this.str;
    const end = toChar - this.strCharBase;
    for (let i = Math.max(0, this.idleStartChar - this.strCharBase); i < end; i++) {
      if (!isXmlSpace(s.charCodeAt(i))) {
        throw this.fail("bad-format", "character data between top-level elements");
      }
    }
  }

  private readonly onOpenTag = (tag: SaxesTagNS): void => {
    if (this.phase === PROLOG) {
      this.openStream(tag);
      return;
    }
    const depth = this.stack.length;
    const uri = tag.uri;
    const attrs: Record<string, string> = {};
    if (depth === 0) {
      if (tag.local === "stream" && uri === NS.stream) {
        // A second header without reset(): the peer restarted the stream when it must not.
        throw this.fail("bad-format", "unexpected stream header");
      }
      if (uri !== this.contentNs) attrs.xmlns = uri;
    } else if (uri !== this.nsStack[depth - 1]) {
      attrs.xmlns = uri;
    }
    const attributes = tag.attributes;
    for (const key in attributes) {
      const a = attributes[key]!;
      const prefix = a.prefix;
      if (prefix === "") {
        if (a.local !== "xmlns") attrs[a.local] = a.value;
      } else if (prefix === "xml") {
        attrs[a.name] = a.value;
      } else if (prefix !== "xmlns") {
        attrs[a.name] = a.value;
        attrs[`xmlns:${prefix}`] = a.uri;
      }
    }
    const el = new Element(tag.local);
    el.attrs = attrs;
    if (depth > 0) {
      const parent = this.stack[depth - 1]!;
      parent.children.push(el);
      el.parent = parent;
    }
    this.stack.push(el);
    this.nsStack.push(uri);
  };

  private readonly onCloseTag = (): void => {
    if (this.phase !== OPEN) return;
    if ((this.pendingStanza !== undefined || this.pendingEnd) && !this.flushPending()) throw ABORT;
    const depth = this.stack.length;
    if (depth === 0) {
      // RFC 6120 §4.4: the peer closed its stream.
      this.pendingEnd = true;
      return;
    }
    const el = this.stack.pop()!;
    this.nsStack.pop();
    if (depth > 1) return;
    const endChar = this.sax.position;
    const endByte = this.bytePos(endChar);
    if (endByte - this.stanzaStartByte > this.maxStanzaBytes) {
      throw this.fail("policy-violation", `stanza larger than ${this.maxStanzaBytes} bytes`);
    }
    this.inStanza = false;
    setTextHandler(this.sax, undefined);
    this.idleClean = true;
    this.idleStartChar = endChar;
    this.idleStartByte = endByte;
    this.pendingStanza = el;
  };

  private readonly onText = (text: string): void => {
    const el = this.stack[this.stack.length - 1];
    if (el === undefined) return;
    const children = el.children;
    const last = children.length - 1;
    const prev = children[last];
    // Merge adjacent text (text, CDATA sections): ltx children alternate elements and strings.
    if (typeof prev === "string") children[last] = prev + text;
    else children.push(text);
  };

  private readonly onCData = (text: string): void => {
    if (this.phase !== OPEN) return;
    if ((this.pendingStanza !== undefined || this.pendingEnd) && !this.flushPending()) throw ABORT;
    // CDATA sections are not restricted by RFC 6120 §11.1; inside a stanza they are plain text.
    if (this.stack.length > 0) {
      this.onText(text);
      return;
    }
    for (let i = 0; i < text.length; i++) {
      if (!isXmlSpace(text.charCodeAt(i))) {
        throw this.fail("bad-format", "character data between top-level elements");
      }
    }
    this.idleClean = true;
    this.idleStartChar = this.sax.position;
    this.idleStartByte = this.bytePos(this.idleStartChar);
  };

  private readonly onComment = (): void => {
    if ((this.pendingStanza !== undefined || this.pendingEnd) && !this.flushPending()) throw ABORT;
    throw this.fail("restricted-xml", "comments are not allowed"); // RFC 6120 §11.1
  };

  private readonly onProcessingInstruction = (): void => {
    if ((this.pendingStanza !== undefined || this.pendingEnd) && !this.flushPending()) throw ABORT;
    throw this.fail("restricted-xml", "processing instructions are not allowed"); // RFC 6120 §11.1
  };

  private readonly onDoctype = (): void => {
    // RFC 6120 §11.1: no DTD, internal subset or not. saxes never expands its entities.
    throw this.fail("restricted-xml", "DTDs are not allowed");
  };

  private readonly onSaxError = (err: Error): void => {
    const message = err.message;
    if (this.pendingStanza !== undefined || this.pendingEnd) {
      if (message.includes("unexpected close tag")) {
        // The element just "closed" did not match its end tag: never deliver it.
        this.pendingStanza = undefined;
        this.pendingEnd = false;
      } else if (!this.flushPending()) {
        throw ABORT; // e.g. junk after </stream:stream>: the stream is over, nothing to report
      }
    }
    throw this.fail(classifySaxError(message, this.phase === PROLOG), message);
  };

  /** The root element: RFC 6120 §4.7 header, §4.8 namespaces. */
  private openStream(tag: SaxesTagNS): void {
    if (tag.local !== "stream" || tag.uri !== NS.stream) {
      // RFC 6120 §4.8.1, §4.9.3.10
      throw this.fail("invalid-namespace", "the stream header must be <stream> in the stream namespace");
    }
    if (tag.prefix === "") {
      // RFC 6120 §4.9.3.2: the header needs a prefix, since the default namespace is the content
      // namespace (§4.8.2, which must differ from the stream namespace). Any prefix bound to the
      // stream namespace is fine: we are namespace-aware (§4.8.5 makes "stream" the convention).
      throw this.fail("bad-namespace-prefix", "the stream element must use a namespace prefix");
    }
    const defaultNs = tag.ns[""];
    if (defaultNs !== this.contentNs) {
      // RFC 6120 §4.8.2, §4.9.3.10: the content namespace must be declared as the default.
      throw this.fail("invalid-namespace", `the default namespace must be ${this.contentNs}`);
    }
    const endChar = this.sax.position;
    const endByte = this.bytePos(endChar);
    if (endByte > this.maxHeaderBytes) {
      throw this.fail("policy-violation", `stream header larger than ${this.maxHeaderBytes} bytes`);
    }
    const attrs: Record<string, string> = {};
    const attributes = tag.attributes;
    for (const key in attributes) {
      const a = attributes[key]!;
      if (a.prefix !== "xmlns" && a.name !== "xmlns") attrs[a.name] = a.value;
    }
    const declared: Record<string, string> = {};
    for (const prefix in tag.ns) declared[prefix] = tag.ns[prefix]!;
    this.phase = OPEN;
    this.prologTail = "";
    this.idleClean = true;
    this.idleStartChar = endChar;
    this.idleStartByte = endByte;
    if (!this.invoke(() => this.handler.onStreamStart(attrs, declared))) throw ABORT;
  }
}

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

type Handlers = { [K in keyof HandlerSlots]: ((...args: never[]) => void) | undefined };

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

function installHandlers(sax: Sax, h: Handlers): void {
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

/** Switch character data collection on or off (see createSax). */
function setTextHandler(sax: Sax, fn: ((text: string) => void) | undefined): void {
  if (NAMED_SLOTS_WORK) (sax as unknown as HandlerSlots).textHandler = fn;
  else setViaOn(sax, "textHandler", fn);
}

/** Map a saxes message to an RFC 6120 §4.9.3 condition. */
function classifySaxError(message: string, inProlog: boolean): StreamErrorCondition {
  // RFC 6120 §11.1: only the five predefined entities; a DOCTYPE anywhere is restricted.
  if (message.includes("undefined entity") || message.includes("doctype")) return "restricted-xml";
  // RFC 6120 §4.9.3.2: an undeclared prefix on the stream header itself.
  if (inProlog && message.includes("unbound namespace prefix")) return "bad-namespace-prefix";
  return "not-well-formed"; // RFC 6120 §4.9.3.13
}
