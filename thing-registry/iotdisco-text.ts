/**
 * The text layer of iotdisco URIs and XSF QR strings: percent-encoding, '\' escapes, splitting,
 * and the checks shared by the encoders and decoders.
 * References: RFC 3986 §2.1 (percent-encoding, upper-case hex), §2.3 (unreserved characters);
 * XEP-0347 §3.9 ('\' escapes ';' and '\'), §5.2 (tag names and values).
 */
import { nameKey, parseDouble, stringValueProblem, type Tag, tagNameProblem } from "./tags.ts";

export class IotDiscoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IotDiscoError";
  }
}

// Percent-encoding (RFC 3986 §2.1) and '\' escapes.

/** Characters left as they are in values: unreserved (§2.3) and pchar sub-delims without meaning here. */
export const VALUE_SAFE = /^[A-Za-z0-9\-._~!$'()*,:@/]$/u;
/** In names also '~' is encoded: it is the mask operator. */
export const NAME_SAFE = /^[A-Za-z0-9\-._]$/u;

export function percentEncode(s: string, safe: RegExp): string {
  let out = "";
  for (const ch of s) {
    if (safe.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, "utf8")) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new IotDiscoError(`malformed percent-encoding in ${JSON.stringify(s)}`);
  }
}

/** Splits on `sep` where it is not escaped by '\'; the parts keep their escapes. */
export function splitUnescaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "\\" && i + 1 < s.length) {
      current += ch + s[i + 1]!;
      i++;
    } else if (ch === sep) {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Index of the first character in `chars` that is not escaped, or -1. */
export function indexOfUnescaped(s: string, chars: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (chars.includes(s[i]!)) return i;
  }
  return -1;
}

/** `\x` → `x` (XEP-0347 §3.9: '\' escapes ';' and '\'; we accept it before any character). */
export function unescapeBackslashes(s: string): string {
  return s.replace(/\\([\s\S])/gu, "$1");
}

export function escapeLegacy(s: string): string {
  return s.replace(/[\\;]/gu, (c) => `\\${c}`);
}

export function checkTag(tag: Tag): void {
  const problem =
    tagNameProblem(tag.name) ??
    (tag.type === "str" ? stringValueProblem(tag.name, tag.value) : undefined) ??
    (tag.type === "num" && !Number.isFinite(tag.value) ? `tag ${tag.name}: not a finite number` : undefined);
  if (problem) throw new IotDiscoError(problem);
}

export function checkUnique(names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    const key = nameKey(name);
    if (seen.has(key)) throw new IotDiscoError(`tag ${name} appears more than once`);
    seen.add(key);
  }
}

export type UriOp = "=" | "<>" | "<" | "<=" | ">" | ">=" | "~";

/** One `[#]NAME OP VALUE` of a URI (or `[#]NAME:VALUE` of a QR string), decoded. */
export interface RawTag {
  readonly numeric: boolean;
  readonly name: string;
  readonly op: UriOp;
  readonly value: string;
}

/** A tag with '=' (claims, direct references, QR strings). */
export function toTag(raw: RawTag): Tag {
  if (raw.op !== "=") throw new IotDiscoError(`tag ${raw.name}: only '=' is allowed here`);
  let tag: Tag;
  if (raw.numeric) {
    const value = parseDouble(raw.value);
    if (value === undefined)
      throw new IotDiscoError(`tag ${raw.name}: ${JSON.stringify(raw.value)} is not a number`);
    tag = { type: "num", name: raw.name, value };
  } else {
    tag = { type: "str", name: raw.name, value: raw.value };
  }
  checkTag(tag);
  return tag;
}
