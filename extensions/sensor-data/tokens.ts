/**
 * The identity tokens any IoT request can carry (who is asking: service, device, user), each
 * possibly several space-separated tokens issued by provisioning servers.
 * References: XEP-0323 schema (serviceToken, deviceToken, userToken on req); XEP-0325 §3 (on set
 * and getForm); XEP-0324 §3.7 (tokens); digest §1.2.
 */
import type { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";

export interface Tokens {
  readonly serviceToken?: string;
  readonly deviceToken?: string;
  readonly userToken?: string;
}

const TOKEN_ATTRS = ["serviceToken", "deviceToken", "userToken"] as const;

/** Longest token attribute accepted (all tokens of one kind, space-separated). */
export const MAX_TOKEN_ATTR_LENGTH = 4096;

/** The tokens on `el`; empty attributes count as absent. */
export function readTokens(el: Element): Tokens {
  const tokens: { -readonly [K in keyof Tokens]: string } = {};
  for (const name of TOKEN_ATTRS) {
    const v = el.attrs[name];
    if (v === undefined || v === "") continue;
    const s = String(v);
    if (s.length > MAX_TOKEN_ATTR_LENGTH) {
      throw new StanzaError("bad-request", `${name} is longer than ${MAX_TOKEN_ATTR_LENGTH} characters`);
    }
    tokens[name] = s;
  }
  return tokens;
}

export function writeTokens(el: Element, t: Tokens): void {
  for (const name of TOKEN_ATTRS) {
    const v = t[name];
    if (v) el.attrs[name] = v;
  }
}

/** Digest §1.2: several tokens of one kind are space-separated. */
export function splitTokens(attr: string | undefined): string[] {
  return attr ? attr.split(/\s+/).filter((t) => t !== "") : [];
}
