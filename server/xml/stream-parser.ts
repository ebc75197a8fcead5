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
import type { SaxesStartTagNS, SaxesTagNS, XMLDecl } from "saxes";
import { StreamError, type StreamErrorCondition } from "./errors.ts";
import { NS } from "./namespaces.ts";
import type { Sax } from "./saxes-handlers.ts";
import * as saxesHandlers from "./saxes-handlers.ts";
import { streamHeaderAttributes, streamHeaderViolation } from "./stream-header.ts";
import type { StreamLimits } from "./stream-input.ts";
import * as streamInput from "./stream-input.ts";

// Module-local copies of what the saxes callbacks use per token or per stanza: going through the
// imported bindings cost about 3% of the parse rate (bench/xml-parser.ts); local constants do not.
const { PROLOG, OPEN, DONE, LT, isXmlSpace } = streamInput;
const { setTextHandler, classifySaxError, createStrictSax } = saxesHandlers;

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

export interface StreamParserOptions extends StreamLimits {
  /** The default namespace the stream header must declare (RFC 6120 §4.8.2). jabber:client by default. */
  contentNamespace?: string;
}

/** Thrown from inside saxes callbacks to stop it in the middle of a chunk. Never escapes write(). */
const ABORT: Error = new Error("stream parsing aborted");

export class StreamParser extends streamInput.StreamInput {
  private readonly handler: StreamParserHandler;
  private readonly contentNs: string;

  private sax!: Sax;
  private decoder!: TextDecoder;
  /** Bumped by reset() and end() so a callback can tell that the parser it runs in is stale. */
  private generation = 0;
  /** An exception thrown by a handler callback, re-thrown by write() once saxes is unwound. */
  private callbackError: unknown = undefined;

  // The element being assembled.
  private readonly stack: Element[] = [];
  private readonly nsStack: string[] = [];
  /** A completed top-level element, delivered once saxes has confirmed the end tag matched. */
  private pendingStanza: Element | undefined = undefined;
  private pendingEnd = false;

  constructor(handler: StreamParserHandler, options: StreamParserOptions = {}) {
    super(options);
    this.handler = handler;
    this.contentNs = options.contentNamespace ?? NS.client;
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
    this.resetInput();
    this.callbackError = undefined;
    this.stack.length = 0;
    this.nsStack.length = 0;
    this.pendingStanza = undefined;
    this.pendingEnd = false;
  }

  private createSax(): Sax {
    // No text handler outside top-level elements: saxes then does not accumulate character data,
    // so whitespace keepalives never pile up (RFC 6120 §4.6.1). It is switched on per stanza.
    return createStrictSax({
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
  }

  private feed(str: string): void {
    this.beginChunk(str);
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

  /**
   * Report an error once and stop. Returns ABORT so callers inside saxes callbacks can
   * `throw this.fail(...)` to stop saxes in the middle of the chunk.
   */
  protected fail(condition: StreamErrorCondition, text: string): Error {
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
    const violation = streamHeaderViolation(tag, this.contentNs);
    if (violation !== undefined) throw this.fail(violation.condition, violation.text);
    const endChar = this.sax.position;
    const endByte = this.bytePos(endChar);
    if (endByte > this.maxHeaderBytes) {
      throw this.fail("policy-violation", `stream header larger than ${this.maxHeaderBytes} bytes`);
    }
    const { attrs, declared } = streamHeaderAttributes(tag);
    this.phase = OPEN;
    this.prologTail = "";
    this.idleClean = true;
    this.idleStartChar = endChar;
    this.idleStartByte = endByte;
    if (!this.invoke(() => this.handler.onStreamStart(attrs, declared))) throw ABORT;
  }
}
