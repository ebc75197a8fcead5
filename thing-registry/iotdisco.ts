/**
 * The iotdisco URI (claim, search and direct-reference forms) and the older XSF QR string
 * (`IoTDisco;NAME:VALUE;#NUM:VALUE`): one encoder and one decoder, used by the registry, the
 * `hanse thing qr` command, the portal and the device SDK.
 * References: XEP-0347 §3.9 (the QR string: ';NAME:VALUE', '#' for numeric tags, '\' escapes ';'
 * and '\' in values, UTF-8), §3.15 (search operators); the iotdisco URI scheme as summarised in
 * ../shared/spec/iot-xeps.md §6.3 (tags joined by ';', '#NAME' numeric, '\' escapes, percent-
 * encoding of names and values, operators = < <= > >= <> ~, range pairs, the R tag), RFC 3986
 * §2.1 (percent-encoding, upper-case hex), §2.3 (unreserved characters).
 *
 * Our choices where the summary is silent (docs/protocol/iotdisco.md):
 * - the encoder percent-encodes every character outside a safe set, so its output never needs a
 *   '\' escape; the decoder also takes '\'-escaped text (hand-written URIs): it splits on
 *   unescaped ';', removes '\' escapes, then percent-decodes;
 * - `~` is followed by the wildcard character, then the mask: `SN~*0009*` = strMask value
 *   `0009*`, wildcard `*`;
 * - JID present: a direct reference (NID, SID and PT carry nodeId, sourceId and cacheType);
 *   otherwise KEY present: a claim; otherwise a search. R (the registry) may appear in all three.
 */
import { decodeLegacy, encodeLegacyQr, LEGACY_QR_PREFIX } from "./iotdisco-legacy.ts";
import {
  checkTag,
  checkUnique,
  IotDiscoError,
  indexOfUnescaped,
  NAME_SAFE,
  percentDecode,
  percentEncode,
  type RawTag,
  splitUnescaped,
  toTag,
  type UriOp,
  unescapeBackslashes,
  VALUE_SAFE,
} from "./iotdisco-text.ts";

export { encodeLegacyQr, IotDiscoError, LEGACY_QR_PREFIX };

import {
  compareCodePoints,
  formatDouble,
  KEY,
  nameKey,
  parseDouble,
  type SearchOp,
  stringValueProblem,
  type Tag,
  tagNameProblem,
} from "./tags.ts";

export const IOTDISCO_SCHEME = "iotdisco:";

export type IotDisco =
  | { readonly kind: "claim"; readonly tags: readonly Tag[]; readonly registry?: string }
  | { readonly kind: "search"; readonly operators: readonly SearchOp[]; readonly registry?: string }
  | {
      readonly kind: "direct";
      readonly jid: string;
      readonly nodeId?: string;
      readonly sourceId?: string;
      readonly cacheType?: string;
      readonly tags: readonly Tag[];
      readonly registry?: string;
    };

/** Names with a meaning of their own in URIs (not meta tags of the thing). */
const RESERVED = new Set(["R", "JID", "NID", "SID", "PT"]);

// ---------------------------------------------------------------------------------------------
// Encoding.

function part(numeric: boolean, name: string, op: UriOp, value: string): string {
  return `${numeric ? "#" : ""}${percentEncode(name, NAME_SAFE)}${op}${percentEncode(value, VALUE_SAFE)}`;
}

function tagPart(tag: Tag): string {
  checkTag(tag);
  return tag.type === "num"
    ? part(true, tag.name, "=", formatDouble(tag.value))
    : part(false, tag.name, "=", tag.value);
}

const COMPARE_URI_OP: Record<string, UriOp> = {
  Eq: "=",
  NEq: "<>",
  Gt: ">",
  GtEq: ">=",
  Lt: "<",
  LtEq: "<=",
};

/** Whether `lower op a AND upper op b` can hold: then the pair reads as a range, else a not-range. */
function satisfiable(cmp: number, lowerInclusive: boolean, upperInclusive: boolean): boolean {
  return cmp < 0 || (cmp === 0 && lowerInclusive && upperInclusive);
}

function operatorParts(op: SearchOp): string[] {
  const problem = tagNameProblem(op.name);
  if (problem) throw new IotDiscoError(problem);
  const numeric = op.op.startsWith("num");
  const text = (v: string | number) => (typeof v === "number" ? formatDouble(v) : v);
  switch (op.op) {
    case "strMask": {
      if ([...op.wildcard].length !== 1)
        throw new IotDiscoError(`tag ${op.name}: a URI mask wildcard is one character`);
      return [part(false, op.name, "~", op.wildcard + op.value)];
    }
    case "strRange":
    case "numRange": {
      const cmp = numeric
        ? (op.min as number) - (op.max as number)
        : compareCodePoints(op.min as string, op.max as string);
      if (!satisfiable(cmp, op.minIncluded, op.maxIncluded)) {
        throw new IotDiscoError(`tag ${op.name}: an empty range cannot be written as a URI`);
      }
      return [
        part(numeric, op.name, op.minIncluded ? ">=" : ">", text(op.min)),
        part(numeric, op.name, op.maxIncluded ? "<=" : "<", text(op.max)),
      ];
    }
    case "strNRange":
    case "numNRange": {
      // Written as `< min` and `> max`; it must not read back as a range (see satisfiable()).
      const cmp = numeric
        ? (op.max as number) - (op.min as number)
        : compareCodePoints(op.max as string, op.min as string);
      if (satisfiable(cmp, !op.maxIncluded, !op.minIncluded)) {
        throw new IotDiscoError(
          `tag ${op.name}: a not-range that excludes nothing cannot be written as a URI`,
        );
      }
      return [
        part(numeric, op.name, op.minIncluded ? "<" : "<=", text(op.min)),
        part(numeric, op.name, op.maxIncluded ? ">" : ">=", text(op.max)),
      ];
    }
    default: {
      if (typeof op.value === "number" && !Number.isFinite(op.value)) {
        throw new IotDiscoError(`tag ${op.name}: not a finite number`);
      }
      if (typeof op.value === "string") {
        const p = stringValueProblem(op.name, op.value);
        if (p) throw new IotDiscoError(p);
      }
      return [part(numeric, op.name, COMPARE_URI_OP[op.op.slice(3)]!, text(op.value))];
    }
  }
}

/** Encodes an iotdisco URI. Throws IotDiscoError for content no URI can carry. */
export function encodeIotDisco(uri: IotDisco): string {
  const parts: string[] = [];
  switch (uri.kind) {
    case "claim":
      if (!uri.tags.some((t) => t.type === "str" && nameKey(t.name) === KEY)) {
        throw new IotDiscoError("a claim URI needs a KEY tag");
      }
      checkUnique(uri.tags.map((t) => t.name));
      for (const tag of uri.tags) {
        if (RESERVED.has(nameKey(tag.name)))
          throw new IotDiscoError(`tag name ${tag.name} is reserved in URIs`);
        parts.push(tagPart(tag));
      }
      break;
    case "search":
      if (uri.operators.length === 0) throw new IotDiscoError("a search URI needs at least one operator");
      checkUnique(uri.operators.map((o) => o.name));
      for (const op of uri.operators) {
        const key = nameKey(op.name);
        if (RESERVED.has(key) || key === KEY)
          throw new IotDiscoError(`tag name ${op.name} cannot be searched in a URI`);
        parts.push(...operatorParts(op));
      }
      break;
    case "direct":
      parts.push(part(false, "JID", "=", uri.jid));
      if (uri.nodeId !== undefined) parts.push(part(false, "NID", "=", uri.nodeId));
      if (uri.sourceId !== undefined) parts.push(part(false, "SID", "=", uri.sourceId));
      if (uri.cacheType !== undefined) parts.push(part(false, "PT", "=", uri.cacheType));
      checkUnique(uri.tags.map((t) => t.name));
      for (const tag of uri.tags) {
        const key = nameKey(tag.name);
        if (RESERVED.has(key) || key === KEY)
          throw new IotDiscoError(`tag name ${tag.name} is reserved in URIs`);
        parts.push(tagPart(tag));
      }
      break;
  }
  if (uri.registry !== undefined) parts.push(part(false, "R", "=", uri.registry));
  return IOTDISCO_SCHEME + parts.join(";");
}

// ---------------------------------------------------------------------------------------------
// Decoding.

function parsePart(raw: string): RawTag {
  const numeric = raw.startsWith("#");
  const body = numeric ? raw.slice(1) : raw;
  const at = indexOfUnescaped(body, "=<>~");
  if (at <= 0) throw new IotDiscoError(`${JSON.stringify(raw)} is not NAME=VALUE`);
  const name = percentDecode(unescapeBackslashes(body.slice(0, at)));
  const rest = body.slice(at);
  const op = (["<>", "<=", ">=", "=", "<", ">", "~"] as const).find((o) => rest.startsWith(o))!;
  const value = percentDecode(unescapeBackslashes(rest.slice(op.length)));
  const problem = tagNameProblem(name);
  if (problem) throw new IotDiscoError(problem);
  return { numeric, name, op, value };
}

function numberOf(raw: RawTag): number {
  const value = parseDouble(raw.value);
  if (value === undefined)
    throw new IotDiscoError(`tag ${raw.name}: ${JSON.stringify(raw.value)} is not a number`);
  return value;
}

function singleOperator(raw: RawTag): SearchOp {
  if (raw.op === "~") {
    if (raw.numeric) throw new IotDiscoError(`tag ${raw.name}: a mask applies to string tags only`);
    const [wildcard, ...rest] = [...raw.value];
    if (wildcard === undefined) throw new IotDiscoError(`tag ${raw.name}: a mask needs a wildcard character`);
    const value = rest.join("");
    const p = stringValueProblem(raw.name, value);
    if (p) throw new IotDiscoError(p);
    return { op: "strMask", name: raw.name, value, wildcard };
  }
  const suffix = { "=": "Eq", "<>": "NEq", ">": "Gt", ">=": "GtEq", "<": "Lt", "<=": "LtEq" }[raw.op];
  if (raw.numeric)
    return { op: `num${suffix}` as SearchOp["op"], name: raw.name, value: numberOf(raw) } as SearchOp;
  const p = stringValueProblem(raw.name, raw.value);
  if (p) throw new IotDiscoError(p);
  return { op: `str${suffix}` as SearchOp["op"], name: raw.name, value: raw.value } as SearchOp;
}

/** Two bounds on one tag: a range when both can hold at once, otherwise a not-range. */
function pairOperator(a: RawTag, b: RawTag): SearchOp {
  const isLower = (r: RawTag) => r.op === ">" || r.op === ">=";
  const isUpper = (r: RawTag) => r.op === "<" || r.op === "<=";
  const lower = isLower(a) ? a : b;
  const upper = lower === a ? b : a;
  if (!isLower(lower) || !isUpper(upper) || a.numeric !== b.numeric) {
    throw new IotDiscoError(`tag ${a.name} appears twice without forming a range`);
  }
  const lowerInclusive = lower.op === ">=";
  const upperInclusive = upper.op === "<=";
  if (a.numeric) {
    const lo = numberOf(lower);
    const hi = numberOf(upper);
    return satisfiable(lo - hi, lowerInclusive, upperInclusive)
      ? {
          op: "numRange",
          name: a.name,
          min: lo,
          minIncluded: lowerInclusive,
          max: hi,
          maxIncluded: upperInclusive,
        }
      : {
          op: "numNRange",
          name: a.name,
          min: hi,
          minIncluded: !upperInclusive,
          max: lo,
          maxIncluded: !lowerInclusive,
        };
  }
  for (const r of [lower, upper]) {
    const p = stringValueProblem(r.name, r.value);
    if (p) throw new IotDiscoError(p);
  }
  return satisfiable(compareCodePoints(lower.value, upper.value), lowerInclusive, upperInclusive)
    ? {
        op: "strRange",
        name: a.name,
        min: lower.value,
        minIncluded: lowerInclusive,
        max: upper.value,
        maxIncluded: upperInclusive,
      }
    : {
        op: "strNRange",
        name: a.name,
        min: upper.value,
        minIncluded: !upperInclusive,
        max: lower.value,
        maxIncluded: !lowerInclusive,
      };
}

function reservedValue(raw: RawTag): string {
  if (raw.op !== "=" || raw.numeric) throw new IotDiscoError(`${raw.name} takes '=' and a string value`);
  return raw.value;
}

function decodeUri(text: string): IotDisco {
  const body = text.slice(IOTDISCO_SCHEME.length);
  const raws = splitUnescaped(body, ";")
    .filter((p) => p.length > 0)
    .map(parsePart);
  if (raws.length === 0) throw new IotDiscoError("the URI carries no tags");
  const byKey = new Map<string, RawTag[]>();
  for (const raw of raws) {
    const key = nameKey(raw.name);
    byKey.set(key, [...(byKey.get(key) ?? []), raw]);
  }
  const single = (key: string): RawTag | undefined => {
    const list = byKey.get(key);
    if (list && list.length > 1) throw new IotDiscoError(`tag ${list[0]!.name} appears more than once`);
    return list?.[0];
  };
  const registryTag = single("R");
  const registry = registryTag ? reservedValue(registryTag) : undefined;
  const withRegistry = <T extends object>(o: T): T => (registry === undefined ? o : { ...o, registry });
  const jid = single("JID");
  const metaTags = (): Tag[] =>
    raws
      .filter((r) => !RESERVED.has(nameKey(r.name)))
      .map((r) => {
        single(nameKey(r.name)); // each meta tag at most once
        return toTag(r);
      });

  if (jid) {
    // A direct reference.
    if (byKey.has(KEY)) throw new IotDiscoError("a direct reference carries no KEY");
    const nid = single("NID");
    const sid = single("SID");
    const pt = single("PT");
    return withRegistry({
      kind: "direct" as const,
      jid: reservedValue(jid),
      ...(nid ? { nodeId: reservedValue(nid) } : {}),
      ...(sid ? { sourceId: reservedValue(sid) } : {}),
      ...(pt ? { cacheType: reservedValue(pt) } : {}),
      tags: metaTags(),
    });
  }
  for (const key of ["NID", "SID", "PT"]) {
    if (byKey.has(key)) throw new IotDiscoError(`${key} is only allowed with JID`);
  }
  if (byKey.has(KEY)) {
    const tags = metaTags();
    return withRegistry({ kind: "claim" as const, tags });
  }
  const operators: SearchOp[] = [];
  for (const [key, list] of byKey) {
    if (RESERVED.has(key)) continue;
    if (list.length === 1) operators.push(singleOperator(list[0]!));
    else if (list.length === 2) operators.push(pairOperator(list[0]!, list[1]!));
    else throw new IotDiscoError(`tag ${list[0]!.name} appears more than twice`);
  }
  if (operators.length === 0) throw new IotDiscoError("a search URI needs at least one operator");
  return withRegistry({ kind: "search" as const, operators });
}

/**
 * Decodes an `iotdisco:` URI or an `IoTDisco;...` QR string (both prefixes are matched
 * case-insensitively; the text is taken exactly, so trim scanner output first). Throws
 * IotDiscoError with a message naming what is wrong.
 */
export function decodeIotDisco(text: string): IotDisco {
  const lower = text.slice(0, LEGACY_QR_PREFIX.length + 1).toLowerCase();
  if (lower.startsWith(IOTDISCO_SCHEME)) return decodeUri(text);
  if (lower === `${LEGACY_QR_PREFIX.toLowerCase()};`) {
    return decodeLegacy(LEGACY_QR_PREFIX + text.slice(LEGACY_QR_PREFIX.length));
  }
  throw new IotDiscoError(`not an iotdisco URI or ${LEGACY_QR_PREFIX} string`);
}
