/**
 * Meta tags and search operators of the thing registry: the data model shared by the XML protocol,
 * the iotdisco URIs and storage, and the rules every tag must follow.
 * References: XEP-0347 §3.6 (str and num tags), §3.15 (search operators), §5.2 (tag names: at most
 * 32 characters, no ':', '#' or white space; string values at most 128 characters; predefined
 * tags), §6.5 (KEY), §6.6 (tag spam).
 */
import { createHash } from "node:crypto";

export type Tag =
  | { readonly type: "str"; readonly name: string; readonly value: string }
  | { readonly type: "num"; readonly name: string; readonly value: number };

export type StrCompareOp = "strEq" | "strNEq" | "strGt" | "strGtEq" | "strLt" | "strLtEq";
export type NumCompareOp = "numEq" | "numNEq" | "numGt" | "numGtEq" | "numLt" | "numLtEq";

/** XEP-0347 §3.15: one search operator (all operators of a search are AND-combined). */
export type SearchOp =
  | { readonly op: StrCompareOp; readonly name: string; readonly value: string }
  | { readonly op: NumCompareOp; readonly name: string; readonly value: number }
  | {
      readonly op: "strRange" | "strNRange";
      readonly name: string;
      readonly min: string;
      readonly minIncluded: boolean;
      readonly max: string;
      readonly maxIncluded: boolean;
    }
  | {
      readonly op: "numRange" | "numNRange";
      readonly name: string;
      readonly min: number;
      readonly minIncluded: boolean;
      readonly max: number;
      readonly maxIncluded: boolean;
    }
  | { readonly op: "strMask"; readonly name: string; readonly value: string; readonly wildcard: string };

export const STR_COMPARE_OPS: readonly StrCompareOp[] = [
  "strEq",
  "strNEq",
  "strGt",
  "strGtEq",
  "strLt",
  "strLtEq",
];
export const NUM_COMPARE_OPS: readonly NumCompareOp[] = [
  "numEq",
  "numNEq",
  "numGt",
  "numGtEq",
  "numLt",
  "numLtEq",
];

/** XEP-0347 §5.2 */
export const MAX_NAME_LENGTH = 32;
export const MAX_STRING_LENGTH = 128;

/** XEP-0347 §5.2: the predefined tags a registry must always accept, with their types. */
export const PREDEFINED_TAGS: ReadonlyMap<string, "str" | "num"> = new Map([
  ["ALT", "num"],
  ["APT", "str"],
  ["AREA", "str"],
  ["BLD", "str"],
  ["CITY", "str"],
  ["CLASS", "str"],
  ["COUNTRY", "str"],
  ["KEY", "str"],
  ["LAT", "num"],
  ["LON", "num"],
  ["MAN", "str"],
  ["MLOC", "str"],
  ["MNR", "str"],
  ["MODEL", "str"],
  ["NAME", "str"],
  ["PURL", "str"],
  ["REGION", "str"],
  ["ROOM", "str"],
  ["SN", "str"],
  ["STREET", "str"],
  ["STREETNR", "str"],
  ["V", "num"],
]);

/** XEP-0347 §6.5: the shared secret between thing and owner; never searchable, never returned. */
export const KEY = "KEY";

/** Tag names are case-insensitive (XEP-0347 §3.6 note): this is the form we compare and index. */
export function nameKey(name: string): string {
  return name.toUpperCase();
}

/** Length in characters (code points), as the XEP counts them. */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Why a tag name is not acceptable, or undefined. XEP-0347 §5.2. */
export function tagNameProblem(name: string): string | undefined {
  if (name.length === 0) return "a tag name is empty";
  if (charLength(name) > MAX_NAME_LENGTH)
    return `tag name ${name} is longer than ${MAX_NAME_LENGTH} characters`;
  if (/[:#\s]/u.test(name)) return `tag name ${name} contains ':', '#' or white space`;
  // Control characters cannot be carried in XML 1.0 anyway; refuse them in URIs too.
  if (/\p{Cc}/u.test(name)) return `tag name ${name} contains a control character`;
  return undefined;
}

/** Why a string value is not acceptable, or undefined. XEP-0347 §5.2. */
export function stringValueProblem(name: string, value: string): string | undefined {
  if (charLength(value) > MAX_STRING_LENGTH)
    return `tag ${name}: the value is longer than ${MAX_STRING_LENGTH} characters`;
  return undefined;
}

/** XML Schema xs:double in its finite lexical forms (no INF/NaN: a tag value must compare). */
const DOUBLE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses a finite xs:double, or undefined. Number() alone would take "", "0x1F" and " 1 ". */
export function parseDouble(text: string | undefined): number | undefined {
  if (text === undefined || !DOUBLE.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** The text form of a numeric value (shortest round-tripping form; -0 is written 0). */
export function formatDouble(n: number): string {
  return Object.is(n, -0) ? "0" : String(n);
}

/**
 * A canonical digest of a tag set: names case-folded, sorted, with their type and value. Two
 * sets of tags are "exactly the same meta data, in any order" (XEP-0347 §3.9) iff their digests
 * are equal, which lets a claim find its thing with one index lookup.
 */
export function tagsDigest(tags: readonly Tag[]): string {
  const parts = tags
    .map(
      (t) => `${t.type}\u0000${nameKey(t.name)}\u0000${t.type === "num" ? formatDouble(t.value) : t.value}`,
    )
    .sort();
  return createHash("sha256").update(parts.join("\u0001")).digest("hex");
}

/** Compares two strings by Unicode code point (the order of PostgreSQL's "C" collation on UTF-8). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}
