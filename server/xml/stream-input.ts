/**
 * StreamInput: the accounting half of StreamParser. It knows where the parser is in the input, in
 * characters and in bytes, and enforces what must hold while data is still arriving: the size of
 * the stream header, of each top-level element and of what lies between them, and that only
 * whitespace separates top-level elements. StreamParser extends it, so these checks read the same
 * fields the saxes callbacks update, with no extra object on the per-stanza path.
 *
 * References: RFC 6120 §4.6.1 (whitespace keepalives), §11.1 (restricted XML: no DTDs or comments
 * in the prolog), §13.12 (denial of service: bounded input).
 */

import type { StreamErrorCondition } from "./errors.ts";

export interface StreamLimits {
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

/** Waiting for the stream header. */
export const PROLOG = 0;
/** Header read; top-level elements flow. */
export const OPEN = 1;
/** Stream closed by the peer, failed, or end() called: input is ignored until reset(). */
export const DONE = 2;
export type Phase = typeof PROLOG | typeof OPEN | typeof DONE;

export const LT = 0x3c;

export function isXmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

export abstract class StreamInput {
  protected readonly maxStanzaBytes: number;
  protected readonly maxDepth: number;
  protected readonly maxHeaderBytes: number;
  protected readonly maxIdleBytes: number;

  protected phase: Phase = PROLOG;

  // Mapping saxes positions (UTF-16 indexes into everything fed since the last reset) to bytes.
  protected str = "";
  protected strCharBase = 0;
  protected strByteBase = 0;
  private strAscii = true;
  private cursorChar = 0;
  private cursorByte = 0;
  private charEnd = 0;
  protected byteEnd = 0;
  /** Last character of the previous chunk while still in the prolog, to spot a split "<!". */
  protected prologTail = "";

  /** Inside a top-level element that started at stanzaStartByte. */
  protected inStanza = false;
  protected stanzaStartByte = 0;

  // Between top-level elements: everything since idleStart is whitespace while idleClean holds.
  protected idleClean = true;
  protected idleStartChar = 0;
  protected idleStartByte = 0;

  constructor(limits: StreamLimits) {
    this.maxStanzaBytes = limits.maxStanzaBytes ?? DEFAULTS.maxStanzaBytes;
    this.maxDepth = Math.max(1, limits.maxDepth ?? DEFAULTS.maxDepth);
    this.maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes;
    this.maxIdleBytes = limits.maxIdleBytes ?? DEFAULTS.maxIdleBytes;
  }

  /**
   * Report an error once and stop. Returns the value callers inside saxes callbacks throw to stop
   * saxes in the middle of a chunk.
   */
  protected abstract fail(condition: StreamErrorCondition, text: string): Error;

  /** Back to the start of a stream (a new parser, or reset()). */
  protected resetInput(): void {
    this.phase = PROLOG;
    this.str = "";
    this.strCharBase = 0;
    this.strByteBase = 0;
    this.strAscii = true;
    this.cursorChar = 0;
    this.cursorByte = 0;
    this.charEnd = 0;
    this.byteEnd = 0;
    this.prologTail = "";
    this.inStanza = false;
    this.stanzaStartByte = 0;
    this.idleClean = true;
    this.idleStartChar = 0;
    this.idleStartByte = 0;
  }

  /** `str` (decoded from the transport) is about to be handed to saxes. */
  protected beginChunk(str: string): void {
    const bytes = Buffer.byteLength(str, "utf8");
    this.str = str;
    this.strCharBase = this.charEnd;
    this.strByteBase = this.byteEnd;
    this.strAscii = bytes === str.length;
    this.cursorChar = 0;
    this.cursorByte = 0;
    this.charEnd += str.length;
    this.byteEnd += bytes;
  }

  /** Limits that must hold whenever we wait for more input, so nothing grows without bound. */
  protected checkLimitsAfterWrite(str: string): void {
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
  protected bytePos(charPos: number): number {
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

  /** Only whitespace may separate top-level elements (RFC 6120 §4.6.1 keepalives). */
  protected checkIdleText(toChar: number): void {
    const s = this.str;
    const end = toChar - this.strCharBase;
    for (let i = Math.max(0, this.idleStartChar - this.strCharBase); i < end; i++) {
      if (!isXmlSpace(s.charCodeAt(i))) {
        throw this.fail("bad-format", "character data between top-level elements");
      }
    }
  }
}
