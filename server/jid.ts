/**
 * JIDs: parsing, validation and normalisation.
 * References: RFC 7622 §3 (address format), §3.2 (domainpart), §3.3 (localpart,
 * UsernameCaseMapped), §3.4 (resourcepart, OpaqueString); RFC 8264 (PRECIS framework);
 * RFC 8265 §3.3, §4.2.
 *
 * We implement the PRECIS profiles' observable rules: width mapping and case mapping of the
 * localpart, NFC on every part, the characters RFC 7622 excludes, controls and spaces refused,
 * and the 1023-octet limit per part. Domains are lowercased and checked as IDNA labels or IP
 * literals.
 */
import { domainToASCII } from "node:url";

export class JidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JidError";
  }
}

const MAX_PART_OCTETS = 1023; // RFC 7622 §3.1
// RFC 7622 §3.3.1: characters not allowed in a localpart.
const LOCALPART_EXCLUDED = /["&'/:<>@]/u;
// Controls (Cc), and in localparts any space separator (RFC 8265 §3.3: no spaces in usernames).
const CONTROL = /\p{Cc}/u;
const SPACE = /\p{Zs}/u;
// Unassigned code points and surrogates are disallowed by PRECIS (RFC 8264 §9.6, §9.8).
const UNASSIGNED_OR_SURROGATE = /[\p{Cn}\p{Cs}]/u;
// Fullwidth / halfwidth forms that PRECIS width mapping folds (RFC 8265 §3.3.1 step 1).
const WIDE_OR_NARROW = /[\uFF01-\uFFEE]/gu;

function octets(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

export function normalizeLocalpart(local: string): string {
  // RFC 8265 §3.3.1/§3.4.1: width-map, case-map (toLowerCase is Unicode default case mapping),
  // then NFC.
  const mapped = local
    .replace(WIDE_OR_NARROW, (c) => c.normalize("NFKC"))
    .toLowerCase()
    .normalize("NFC");
  if (mapped.length === 0) throw new JidError("empty localpart");
  if (octets(mapped) > MAX_PART_OCTETS) throw new JidError("localpart longer than 1023 octets");
  if (LOCALPART_EXCLUDED.test(mapped)) throw new JidError("localpart contains a character RFC 7622 excludes");
  if (CONTROL.test(mapped) || SPACE.test(mapped)) throw new JidError("localpart contains a space or control");
  if (UNASSIGNED_OR_SURROGATE.test(mapped)) throw new JidError("localpart contains an unassigned code point");
  return mapped;
}

export function normalizeResourcepart(resource: string): string {
  // RFC 8265 §4.2.1: OpaqueString maps non-ASCII spaces to U+0020, then NFC.
  const mapped = resource.replace(/\p{Zs}/gu, " ").normalize("NFC");
  if (mapped.length === 0) throw new JidError("empty resourcepart");
  if (octets(mapped) > MAX_PART_OCTETS) throw new JidError("resourcepart longer than 1023 octets");
  if (CONTROL.test(mapped)) throw new JidError("resourcepart contains a control character");
  if (UNASSIGNED_OR_SURROGATE.test(mapped))
    throw new JidError("resourcepart contains an unassigned code point");
  return mapped;
}

export function normalizeDomainpart(domain: string): string {
  // RFC 7622 §3.2: a trailing dot is stripped; IP literals allowed; otherwise IDNA2008 labels.
  let d = domain.endsWith(".") ? domain.slice(0, -1) : domain;
  if (d.length === 0) throw new JidError("empty domainpart");
  if (d.startsWith("[") && d.endsWith("]")) return d.toLowerCase(); // IPv6 literal
  d = d.normalize("NFC").toLowerCase();
  const ascii = domainToASCII(d);
  if (!ascii) throw new JidError("domainpart is not a valid domain name");
  if (octets(d) > MAX_PART_OCTETS) throw new JidError("domainpart longer than 1023 octets");
  for (const label of ascii.split(".")) {
    if (label.length === 0 || label.length > 63)
      throw new JidError("domainpart has an empty or too long label");
    // RFC 5890 §2.3.1 (LDH labels): letters, digits, hyphens, not at either end.
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(label)) {
      throw new JidError("domainpart contains a character not allowed in a domain name");
    }
  }
  return d;
}

export class Jid {
  readonly local: string;
  readonly domain: string;
  readonly resource: string;

  /** Parts must already be normalised: use `parseJid` or `Jid.of`. */
  private constructor(local: string, domain: string, resource: string) {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
  }

  static of(local: string | undefined, domain: string, resource?: string): Jid {
    return new Jid(
      local ? normalizeLocalpart(local) : "",
      normalizeDomainpart(domain),
      resource ? normalizeResourcepart(resource) : "",
    );
  }

  get bare(): string {
    return this.local ? `${this.local}@${this.domain}` : this.domain;
  }

  get full(): string {
    return this.resource ? `${this.bare}/${this.resource}` : this.bare;
  }

  isBare(): boolean {
    return this.resource === "";
  }

  toBare(): Jid {
    return this.resource ? new Jid(this.local, this.domain, "") : this;
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, normalizeResourcepart(resource));
  }

  equals(other: Jid): boolean {
    return this.full === other.full;
  }

  toString(): string {
    return this.full;
  }
}

/**
 * Parsed JIDs by their input string. The router parses the `from` and `to` of every stanza, and
 * full normalisation (PRECIS mappings, IDNA through `domainToASCII`) was about a tenth of the CPU
 * per routed message (docs/benchmarks.md, profiling notes); a hit returns the same immutable Jid.
 * Bounded so that a peer sending endless distinct JIDs cannot grow memory: two generations of at
 * most `maxEntries` each; when the young one is full it becomes the old one and the old one is
 * dropped, and a hit in the old generation moves the entry back to the young one. So the memory
 * stays under 2 × maxEntries short keys, and JIDs in steady use survive each turnover (an
 * approximate LRU without the bookkeeping of one on every hit). Inputs longer than `maxKeyLength`
 * are parsed but not kept, which bounds the bytes as well as the count. Malformed JIDs are never
 * cached: they throw every time.
 */
export class JidParseCache {
  private young = new Map<string, Jid>();
  private old = new Map<string, Jid>();
  readonly maxEntries: number;
  readonly maxKeyLength: number;

  constructor(opts: { maxEntries: number; maxKeyLength: number }) {
    this.maxEntries = opts.maxEntries;
    this.maxKeyLength = opts.maxKeyLength;
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  parse(input: string): Jid {
    const young = this.young.get(input);
    if (young) return young;
    const old = this.old.get(input);
    if (old) {
      this.remember(input, old);
      return old;
    }
    if (typeof input !== "string" || input.length > this.maxKeyLength) return parseJidUncached(input);
    // Key and parts must not hold on to the text they were cut from: V8 keeps a sliced string's
    // parent alive, and an attribute value from the XML parser can be a slice of a whole read
    // chunk (up to 64 KiB). A flat copy (UTF-16 round trip: exact, lone surrogates included)
    // keeps each entry at the size of its JID.
    const key = Buffer.from(input, "utf16le").toString("utf16le");
    const jid = parseJidUncached(key);
    this.remember(key, jid);
    return jid;
  }

  private remember(input: string, jid: Jid): void {
    if (this.young.size >= this.maxEntries) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(input, jid);
  }
}

/**
 * The process's cache behind parseJid. 2 × 10,000 entries of at most 256 UTF-16 units (key plus
 * parsed parts): about 30 MB in the worst case, a few MB for ordinary JIDs. A pure memo of a pure function (same
 * input, same immutable result), so sharing it is safe and invisible to callers.
 */
const parsedJids = new JidParseCache({ maxEntries: 10_000, maxKeyLength: 256 });

/** RFC 7622 §3.1: split at the first '/', then at the last '@' before it. */
export function parseJid(input: string): Jid {
  return parsedJids.parse(input);
}

function parseJidUncached(input: string): Jid {
  if (typeof input !== "string" || input.length === 0) throw new JidError("empty JID");
  const slash = input.indexOf("/");
  const head = slash >= 0 ? input.slice(0, slash) : input;
  const resource = slash >= 0 ? input.slice(slash + 1) : undefined;
  if (resource !== undefined && resource.length === 0) throw new JidError("empty resourcepart after '/'");
  const at = head.indexOf("@");
  const local = at >= 0 ? head.slice(0, at) : undefined;
  const domain = at >= 0 ? head.slice(at + 1) : head;
  if (local !== undefined && local.length === 0) throw new JidError("empty localpart before '@'");
  return Jid.of(local, domain, resource);
}

/** Like parseJid but returns undefined for a malformed JID. */
export function tryParseJid(input: string | undefined): Jid | undefined {
  if (!input) return undefined;
  try {
    return parseJid(input);
  } catch {
    return undefined;
  }
}
