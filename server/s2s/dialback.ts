/**
 * Server dialback pieces shared by both directions: the key (XEP-0185), its secret kept in the
 * data directory so keys handed out before a restart still verify after it, and the
 * <db:result/> and <db:verify/> elements.
 * References: XEP-0185 §3 (key generation: HMAC-SHA256 keyed with the hex SHA-256 of a secret over
 * "receiving originating stream-id"), XEP-0220 §2.1-§2.2 (the elements and their attributes),
 * §2.4 (stream feature with <errors/>), §2.5 (dialback error conditions).
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { Element } from "ltx";
import { loadSecretFile } from "../storage/secret-file.ts";
import { NS } from "../xml/namespaces.ts";

export const NS_DIALBACK = "jabber:server:dialback";
/** XEP-0220 §2.4.2: the stream feature saying we support dialback (with error handling). */
export const NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback";
/** Declared on every s2s stream header (XEP-0220 §2.4.1: traditional dialback advertisement). */
export const DIALBACK_XMLNS = { db: NS_DIALBACK } as const;

/** The secret, as XEP-0185 uses it: the lower-case hex SHA-256 of the stored random value. */
export type DialbackSecret = string & { readonly __dialbackSecret: true };

/**
 * Reads `<data_dir>/s2s/dialback-secret`, or makes it (32 random bytes, hex, mode 0600). Keeping it
 * across restarts lets a peer that verifies late (or after our restart) still get "valid".
 */
export async function loadDialbackSecret(dataDir: string): Promise<DialbackSecret> {
  return secretFrom(await loadSecretFile(dataDir, "s2s", "dialback-secret"));
}

/** XEP-0185 §3: the HMAC key is SHA256(secret) written as hex. */
export function secretFrom(value: string): DialbackSecret {
  return createHash("sha256").update(value).digest("hex") as DialbackSecret;
}

/** XEP-0185 §3: HMAC-SHA256(SHA256(secret), receiving + " " + originating + " " + streamId), hex. */
export function dialbackKey(
  secret: DialbackSecret,
  receiving: string,
  originating: string,
  streamId: string,
): string {
  return createHmac("sha256", secret).update(`${receiving} ${originating} ${streamId}`).digest("hex");
}

/** Compares a key received (whitespace around it allowed, any case) with ours, in constant time. */
export function keyMatches(
  secret: DialbackSecret,
  receiving: string,
  originating: string,
  streamId: string,
  key: string,
): boolean {
  const expected = Buffer.from(dialbackKey(secret, receiving, originating, streamId));
  const got = Buffer.from(key.trim().toLowerCase());
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export type DialbackType = "valid" | "invalid" | "error";

/** <db:result/> or <db:verify/>: a request (key, no type) or an answer (type, no key). */
export function dialbackElement(
  name: "result" | "verify",
  attrs: { from: string; to: string; id?: string; type?: DialbackType },
  key?: string,
  errorCondition?: string,
): Element {
  const el = new Element(`db:${name}`, {
    from: attrs.from,
    to: attrs.to,
    ...(attrs.id !== undefined ? { id: attrs.id } : {}),
    ...(attrs.type ? { type: attrs.type } : {}),
  });
  if (key !== undefined) el.t(key);
  if (errorCondition) {
    // XEP-0220 §2.5: <error/> (jabber:server) with a stanza error condition.
    el.c("error", { type: errorCondition === "remote-server-timeout" ? "wait" : "cancel" }).c(
      errorCondition,
      {
        xmlns: NS.stanzaErrors,
      },
    );
  }
  return el;
}

/** The condition inside a dialback error answer, if any. */
export function dialbackErrorCondition(el: Element): string | undefined {
  const error = el.getChild("error");
  return error?.getChildElements().find((c) => c.attrs.xmlns === NS.stanzaErrors && c.name !== "text")?.name;
}

/** <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback> (XEP-0220 §2.4.2). */
export function dialbackFeature(): Element {
  const feature = new Element("dialback", { xmlns: NS_DIALBACK_FEATURE });
  feature.c("errors");
  return feature;
}
