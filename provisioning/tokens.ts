/**
 * Tokens (XEP-0324 §3.1, "getToken"): a client proves it holds the private key of an X.509
 * certificate and gets a token for it. The client sends the certificate's public part
 * (`getToken`, base64 DER); the service answers with a random secret encrypted with the
 * certificate's RSA key using OAEP (`getTokenChallenge seqnr`); the client decrypts it and sends
 * it back (`getTokenChallengeResponse seqnr`); the service answers with the token
 * (`getTokenResponse token`). The same certificate always gets the same token.
 *
 * - A challenge is kept CHALLENGE_TTL_MS (at least the minute the XEP asks for), for its
 *   requester only, and for one answer: a wrong answer is `bad-request` and ends it.
 * - An unknown, expired, used or someone else's `seqnr` is `item-not-found` (nothing leaks).
 * - Open challenges are bounded per requester and in all (`resource-constraint`).
 * - OAEP uses SHA-1 (node's default), what XEP-0324 clients implement.
 *
 * Tokens are issued and stored; decisions do not use them yet (canRead/canControl ignore the
 * token attributes).
 * References: XEP-0324 §3.1 (getToken, getTokenChallenge, getTokenChallengeResponse,
 * getTokenResponse; "the token contains no whitespace"), §8 schema (seqnr is xs:int, the
 * challenge and response are xs:base64Binary), RFC 8017 §7.1 (RSAES-OAEP), RFC 5280 §4.1 (validity).
 */
import {
  constants,
  createHash,
  publicEncrypt,
  randomBytes,
  randomInt,
  timingSafeEqual,
  X509Certificate,
} from "node:crypto";
import { Element } from "ltx";
import type { IqHandler } from "../server/modules/module.ts";
import { StanzaError } from "../server/xml/errors.ts";
import type { AuditLog } from "./audit.ts";
import { NS_PROVISIONING } from "./protocol.ts";
import type { ProvisioningStore } from "./store.ts";

/** How long a challenge can be answered: XEP-0324 asks for at least a minute. */
export const CHALLENGE_TTL_MS = 120_000;
/** Open challenges per requester, and in all. */
export const MAX_CHALLENGES_PER_REQUESTER = 5;
const MAX_CHALLENGES = 10_000;
/** Tokens (certificates) one JID may hold. */
export const MAX_TOKENS_PER_JID = 100;
/** Base64 characters of a certificate (a 4096-bit RSA certificate is well under 3 KB). */
const MAX_CERTIFICATE_BASE64 = 16_384;
const MIN_RSA_BITS = 2048;
const SECRET_BYTES = 32;
/** xs:int: sequence numbers stay positive 32-bit integers. */
const MAX_SEQNR = 2 ** 31 - 1;

const bad = (text: string) => new StanzaError("bad-request", text);

/** xs:base64Binary: whitespace is allowed between characters; anything else is refused. */
function base64Of(el: Element, what: string, maxChars: number): Buffer {
  const text = el.getText().replace(/\s+/g, "");
  if (text.length === 0) throw bad(`<${el.name}/> needs the ${what} as base64`);
  if (text.length > maxChars) throw bad(`the ${what} is longer than ${maxChars} base64 characters`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw bad(`the ${what} is not base64`);
  }
  return Buffer.from(text, "base64");
}

function seqnrOf(el: Element): number {
  const v = el.attrs.seqnr;
  if (typeof v !== "string" || !/^\d{1,10}$/.test(v) || Number(v) > MAX_SEQNR) {
    throw bad(`<${el.name}/> needs a seqnr (a positive whole number)`);
  }
  return Number(v);
}

/** The certificate a client may get a token for: X.509, RSA of at least 2048 bits, valid now. */
function acceptedCertificate(der: Buffer, now: Date): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    throw bad("not an X.509 certificate (DER, base64)");
  }
  const key = cert.publicKey;
  if (key.asymmetricKeyType !== "rsa") throw bad("only RSA certificates can be challenged (OAEP)");
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw bad(`the RSA key must have at least ${MIN_RSA_BITS} bits`);
  }
  // RFC 5280 §4.1.2.5: outside its validity the certificate identifies nobody.
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
    throw bad("the certificate is not valid now");
  }
  return cert;
}

interface Challenge {
  readonly requester: string;
  readonly certificate: Buffer;
  readonly fingerprint: string;
  readonly subject: string;
  readonly secret: Buffer;
  readonly expiresAt: number;
}

export interface TokenIssuerDeps {
  readonly store: ProvisioningStore;
  readonly audit: AuditLog;
  readonly now?: () => number;
}

export class TokenIssuer {
  private readonly deps: TokenIssuerDeps;
  /** By seqnr, oldest first (every challenge lives equally long, so also by expiry). */
  private readonly challenges = new Map<number, Challenge>();
  private readonly perRequester = new Map<string, number>();
  private nextSeqnr = randomInt(1, 1_000_000);

  constructor(deps: TokenIssuerDeps) {
    this.deps = deps;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /** getToken: checks the certificate and returns the challenge for it. */
  challenge(requester: string, certificate: Buffer): { seqnr: number; encrypted: Buffer } {
    const now = this.now();
    this.expire(now);
    const cert = acceptedCertificate(certificate, new Date(now));
    if ((this.perRequester.get(requester) ?? 0) >= MAX_CHALLENGES_PER_REQUESTER) {
      throw new StanzaError("resource-constraint", "too many open token challenges: answer them first");
    }
    if (this.challenges.size >= MAX_CHALLENGES) {
      throw new StanzaError("resource-constraint", "too many open token challenges; try again later");
    }
    const secret = randomBytes(SECRET_BYTES);
    // RFC 8017 §7.1 RSAES-OAEP; SHA-1 as the XEP-0324 clients use.
    const encrypted = publicEncrypt(
      { key: cert.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
      secret,
    );
    const seqnr = this.nextSeqnr;
    this.nextSeqnr = seqnr >= MAX_SEQNR ? 1 : seqnr + 1;
    this.challenges.delete(seqnr); // after a wrap-around, an ancient leftover is replaced
    this.challenges.set(seqnr, {
      requester,
      certificate,
      fingerprint: createHash("sha256").update(certificate).digest("hex"),
      subject: cert.subject,
      secret,
      expiresAt: now + CHALLENGE_TTL_MS,
    });
    this.perRequester.set(requester, (this.perRequester.get(requester) ?? 0) + 1);
    return { seqnr, encrypted };
  }

  /** getTokenChallengeResponse: the token when the answer is the secret. */
  async respond(requester: string, seqnr: number, answer: Buffer): Promise<string> {
    this.expire(this.now());
    const challenge = this.challenges.get(seqnr);
    // Someone else's challenge is as unknown to this requester as one never made.
    if (!challenge || challenge.requester !== requester) {
      throw new StanzaError("item-not-found", `no open token challenge ${seqnr}`);
    }
    this.remove(seqnr, challenge); // one answer per challenge, right or wrong
    const right = answer.length === challenge.secret.length && timingSafeEqual(answer, challenge.secret);
    if (!right) throw bad("the challenge was not answered correctly; ask for a new one");
    const issued = await this.deps.store.issueToken(
      requester,
      challenge.fingerprint,
      challenge.certificate.toString("base64"),
      MAX_TOKENS_PER_JID,
    );
    if (issued === "too-many") {
      throw new StanzaError("resource-constraint", `${requester} has ${MAX_TOKENS_PER_JID} tokens already`);
    }
    await this.deps.audit.write({
      actor: requester,
      action: "token-issued",
      caller: requester,
      detail: { fingerprint: challenge.fingerprint, subject: challenge.subject, new: issued.created },
    });
    return issued.token;
  }

  private expire(now: number): void {
    for (const [seqnr, challenge] of this.challenges) {
      if (challenge.expiresAt > now) break;
      this.remove(seqnr, challenge);
    }
  }

  private remove(seqnr: number, challenge: Challenge): void {
    this.challenges.delete(seqnr);
    const left = (this.perRequester.get(challenge.requester) ?? 1) - 1;
    if (left > 0) this.perRequester.set(challenge.requester, left);
    else this.perRequester.delete(challenge.requester);
  }
}

export function getTokenHandler(issuer: TokenIssuer): IqHandler {
  return ({ from, payload }) => {
    const certificate = base64Of(payload, "certificate", MAX_CERTIFICATE_BASE64);
    const { seqnr, encrypted } = issuer.challenge(from.bare, certificate);
    return new Element("getTokenChallenge", { xmlns: NS_PROVISIONING, seqnr: String(seqnr) }).t(
      encrypted.toString("base64"),
    );
  };
}

export function getTokenChallengeResponseHandler(issuer: TokenIssuer): IqHandler {
  return async ({ from, payload }) => {
    const seqnr = seqnrOf(payload);
    const answer = base64Of(payload, "decrypted challenge", 1024);
    const token = await issuer.respond(from.bare, seqnr, answer);
    return new Element("getTokenResponse", { xmlns: NS_PROVISIONING, token });
  };
}
