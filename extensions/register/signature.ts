/**
 * XEP-0348 form signatures (OAuth 1.0 style): the parameter string, the base string and the
 * HMAC-SHA1 / PLAINTEXT signatures, and their verification.
 * References: XEP-0348 §2 (Escape: RFC 3986 unreserved kept, upper-case hex, NFC, UTF-8), §2.2
 * (every field sorted by var, except oauth_token_secret and oauth_signature), §2.3 (PStr), §2.4
 * (BStr = Escape(type)&Escape(to)&Escape(PStr)), §2.5 (HMAC-SHA1 key Escape(consumer secret)&
 * Escape(token secret); signature Escape(Base64(H(BStr))); PLAINTEXT), §6.1 (PLAINTEXT only over
 * TLS), §6.2 (never trust server values echoed by the client); RFC 5849 §3.4 (OAuth 1.0).
 *
 * COMPAT: device libraries sign pre-authentication registrations with an empty `to` (the
 * stream has no addressee yet), i.e. BStr = "submit&&" + Escape(PStr); the verifier accepts the
 * base string with the iq's `to`, with the domain, and with the empty `to`.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const NS_SIGNATURE = "urn:xmpp:xdata:signature:oauth1";

/** XEP-0348 §2 Escape(s). */
export function oauthEscape(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s.normalize("NFC"), "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export interface SignedField {
  readonly var: string;
  readonly values: readonly string[];
}

/** §2.2–§2.3: every (var, value) pair but the secret and the signature, sorted, escaped, joined. */
export function parameterString(fields: readonly SignedField[]): string {
  const pairs: [string, string][] = [];
  for (const f of fields) {
    if (f.var === "oauth_token_secret" || f.var === "oauth_signature") continue;
    const values = f.values.length === 0 ? [""] : f.values;
    for (const v of values) pairs.push([oauthEscape(f.var), oauthEscape(v)]);
  }
  // Ordinal order of the escaped names (then values), as OAuth 1.0 sorts (RFC 5849 §3.4.1.3.2).
  pairs.sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join("&");
}

/** §2.4 */
export function baseString(formType: string, to: string, pstr: string): string {
  return `${oauthEscape(formType)}&${oauthEscape(to)}&${oauthEscape(pstr)}`;
}

/** §2.5: Base64(HMAC-SHA1(BStr)) with key Escape(consumer secret)&Escape(token secret). */
export function hmacSha1(base: string, consumerSecret: string, tokenSecret = ""): string {
  return createHmac("sha1", `${oauthEscape(consumerSecret)}&${oauthEscape(tokenSecret)}`)
    .update(base, "utf8")
    .digest("base64");
}

/** §2.5: the PLAINTEXT "signature". */
export function plaintextSignature(consumerSecret: string, tokenSecret = ""): string {
  return oauthEscape(consumerSecret) + oauthEscape(tokenSecret);
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

export type SignatureMethod = "HMAC-SHA1" | "PLAINTEXT";

export interface VerifyInput {
  readonly fields: readonly SignedField[];
  readonly method: SignatureMethod;
  /** The signature as sent: Escape(Base64(...)) per §2.5, or plain Base64 (both seen in practice). */
  readonly signature: string;
  readonly consumerSecret: string;
  /** Addressees the client may have signed for (the iq's `to`, the domain, ""). */
  readonly toCandidates: readonly string[];
  /** The form type the base string starts with (§2.4: "submit" for a submitted form). */
  readonly formType?: string;
}

/** True if the signature matches for one of the candidate addressees. */
export function verifySignature(input: VerifyInput): boolean {
  const given = input.signature;
  if (input.method === "PLAINTEXT") return same(given, plaintextSignature(input.consumerSecret));
  const pstr = parameterString(input.fields);
  let ok = false;
  for (const to of new Set(input.toCandidates)) {
    const expected = hmacSha1(baseString(input.formType ?? "submit", to, pstr), input.consumerSecret);
    // Every candidate is computed and compared, so timing does not tell which one matched.
    if (same(given, oauthEscape(expected)) || same(given, expected)) ok = true;
  }
  return ok;
}
