/**
 * SCRAM server mechanisms: SCRAM-SHA-1, SCRAM-SHA-256 and their channel-binding -PLUS variants.
 * References: RFC 5802 (SCRAM: §3 algorithm, §5.1 attributes, §6 channel binding, §7 syntax,
 * §9 security), RFC 7677 (SCRAM-SHA-256), RFC 9266 (tls-exporter), RFC 5929 §4
 * (tls-server-end-point), RFC 4013 (SASLprep), RFC 7622 §3.3 (the SASL simple user name is the
 * JID localpart), RFC 6120 §6.3.10 (server-final-message as <success/> additional data), §6.5.
 *
 * Why it looks like this: the server holds only StoredKey/ServerKey, never a password (RFC 5802 §3),
 * so a whole exchange costs two HMACs and a hash. An unknown user gets deterministic fake
 * credentials derived from a server secret and walks the same path, failing only at the proof with
 * not-authorized: the answer and the timing do not tell whether the account exists (RFC 5802 §9).
 * The stream base64-decodes (incorrect-encoding is its job); we get and return raw bytes.
 * authzid: we accept only a bare JID whose localpart is the authenticating user and hand it back
 * in the success step; the stream must check its domain (see `checkAuthzid` in mechanisms.ts).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import saslprep from "@mongodb-js/saslprep";
import { normalizeLocalpart, parseJid } from "../jid.ts";
import { SaslFailure } from "../xml/errors.ts";
import type {
  SaslContext,
  SaslMechanismFactory,
  SaslServerMechanism,
  SaslStep,
  ScramCredentials,
} from "./mechanism.ts";

export type ScramHash = ScramCredentials["hash"];
export type ChannelBindingType = "tls-exporter" | "tls-server-end-point";

/** In preference order: tls-exporter is the TLS 1.3 binding (RFC 9266 §1). */
export const CHANNEL_BINDING_TYPES: readonly ChannelBindingType[] = ["tls-exporter", "tls-server-end-point"];

export interface FakeCredentialOptions {
  /**
   * Secret from which unknown users' fake salts and keys are derived. Give a persistent one
   * (e.g. from storage): with the default, a per-process random secret, an attacker watching
   * across restarts could notice that an unknown user's salt changed.
   */
  readonly fakeSecret?: Buffer;
  /** Iteration count announced for unknown users: keep it equal to the one real accounts use. */
  readonly fakeIterations?: number;
  /** Salt length announced for unknown users: keep it equal to the one real accounts use. */
  readonly fakeSaltLength?: number;
}

export interface ScramOptions extends FakeCredentialOptions {
  /** The server's part of the nonce (printable, no ","). Injectable so tests can replay RFC vectors. */
  readonly nonce?: () => string;
}

const PROCESS_SECRET = randomBytes(32);
const DEFAULT_ITERATIONS = 4096; // RFC 7677 §4: at least 4096
const DEFAULT_SALT_LENGTH = 16;
const MAX_MESSAGE_OCTETS = 8192;
const HASH_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
// RFC 5802 §7: printable = %x21-2B / %x2D-7E (no ",")
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// RFC 5802 §7: attr-val = ALPHA "=" value
const EXTENSION = /^[A-Za-z]=[^,]*$/;

export function malformed(text: string): SaslFailure {
  return new SaslFailure("malformed-request", text);
}

/** The channel-binding types this connection can serve, in preference order. */
export function channelBindingTypes(ctx: SaslContext): ChannelBindingType[] {
  return CHANNEL_BINDING_TYPES.filter((type) => ctx.channelBinding(type) !== undefined);
}

/** Strict UTF-8 (RFC 5802 §7 and RFC 4616 §2 are UTF-8 grammars), with a size limit. */
export function decodeUtf8(input: Buffer): string {
  if (input.length > MAX_MESSAGE_OCTETS) throw malformed("message too long");
  try {
    return UTF8.decode(input);
  } catch {
    throw malformed("message is not valid UTF-8");
  }
}

/** RFC 5802 §5.1: in a saslname "=2C" is "," and "=3D" is "="; any other "=" is an error. */
export function decodeSaslname(value: string): string {
  if (value.length === 0 || value.includes("\0") || /=(?!2C|3D)/.test(value)) {
    throw malformed("bad saslname");
  }
  return value.replace(/=(2C|3D)/g, (_, code: string) => (code === "2C" ? "," : "="));
}

/**
 * RFC 5802 §5.1: SASLprep the user name as a query string; RFC 7622 §3.3 / RFC 6120 §6.3.8: in XMPP
 * it is a localpart, normalised with UsernameCaseMapped. Returns the SASLprepped name and, when it
 * can be an account at all, the normalised localpart.
 */
export function prepareUsername(raw: string): { prepped: string; localpart: string | undefined } {
  let prepped: string;
  try {
    prepped = saslprep(raw, { allowUnassigned: true });
  } catch {
    throw malformed("user name fails SASLprep");
  }
  if (prepped.length === 0) throw malformed("empty user name");
  try {
    return { prepped, localpart: normalizeLocalpart(prepped) };
  } catch {
    // Cannot be an account: handled exactly like an unknown user.
    return { prepped, localpart: undefined };
  }
}

/**
 * An authzid may only name the authenticating user (RFC 6120 §6.3.8): a bare JID with that
 * localpart. The domain is the stream's to check. Returns the normalised bare JID.
 */
export function checkAuthzidForm(authzid: string, localpart: string | undefined): string {
  let bare: string;
  let local: string;
  try {
    const jid = parseJid(authzid);
    if (!jid.isBare()) throw new Error("full JID");
    bare = jid.bare;
    local = jid.local;
  } catch {
    throw new SaslFailure("invalid-authzid", "authzid must be your bare JID");
  }
  if (localpart === undefined || local !== localpart) {
    throw new SaslFailure("invalid-authzid", "authzid must be your bare JID");
  }
  return bare;
}

/** Deterministic stand-in credentials for a user that does not exist (RFC 5802 §9). */
export function fakeCredentials(
  hash: ScramHash,
  username: string,
  opts: FakeCredentialOptions,
): ScramCredentials {
  const secret = opts.fakeSecret ?? PROCESS_SECRET;
  const derive = (label: string): Buffer =>
    createHmac("sha256", secret).update(`hanse-fake-scram\0${label}\0${hash}\0${username}`).digest();
  return {
    hash,
    salt: derive("salt").subarray(0, opts.fakeSaltLength ?? DEFAULT_SALT_LENGTH),
    iterations: opts.fakeIterations ?? DEFAULT_ITERATIONS,
    storedKey: derive("stored").subarray(0, HASH_LENGTH[hash]),
    serverKey: derive("server").subarray(0, HASH_LENGTH[hash]),
  };
}

/** Looks up credentials; a storage error is temporary-auth-failure (RFC 6120 §6.5.11). */
export async function lookupCredentials(
  ctx: SaslContext,
  localpart: string | undefined,
  hash: ScramHash,
): Promise<ScramCredentials | undefined> {
  if (localpart === undefined) return undefined;
  let creds: ScramCredentials | undefined;
  try {
    creds = await ctx.credentials(localpart, hash);
  } catch {
    throw new SaslFailure("temporary-auth-failure");
  }
  return creds && creds.hash === hash ? creds : undefined;
}

export function hmac(hash: ScramHash, key: Buffer, data: Buffer | string): Buffer {
  return createHmac(hash, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

/** Constant-time equality that does not throw on a length mismatch. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function defaultNonce(): string {
  return randomBytes(24).toString("base64"); // base64 has no "," and is printable
}

function decodeBase64(value: string, what: string): Buffer {
  if (!BASE64.test(value)) throw malformed(`${what} is not base64`);
  return Buffer.from(value, "base64");
}

function checkExtensions(attrs: readonly string[]): void {
  // RFC 5802 §5.1: optional extensions we do not know are ignored, but must be well-formed.
  for (const attr of attrs) if (!EXTENSION.test(attr)) throw malformed("bad attribute");
}

export function mechanismName(hash: ScramHash, plus: boolean): string {
  return `SCRAM-${hash === "sha1" ? "SHA-1" : "SHA-256"}${plus ? "-PLUS" : ""}`;
}

class ScramServer implements SaslServerMechanism {
  readonly name: string;
  readonly #ctx: SaslContext;
  readonly #hash: ScramHash;
  readonly #plus: boolean;
  readonly #opts: ScramOptions;
  #state: "first" | "final" | "done" = "first";
  #gs2Header = "";
  #cbData: Buffer = Buffer.alloc(0);
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";
  #username = "";
  #authzid: string | undefined;
  #known = false;
  #creds: ScramCredentials | undefined;

  constructor(ctx: SaslContext, hash: ScramHash, plus: boolean, opts: ScramOptions) {
    this.name = mechanismName(hash, plus);
    this.#ctx = ctx;
    this.#hash = hash;
    this.#plus = plus;
    this.#opts = opts;
  }

  async step(input: Buffer): Promise<SaslStep> {
    const state = this.#state;
    this.#state = "done"; // any failure ends the exchange
    if (state === "first") {
      const challenge = await this.#first(input);
      this.#state = "final";
      return challenge;
    }
    if (state === "final") return this.#final(input);
    throw malformed("the exchange is over");
  }

  async #first(input: Buffer): Promise<SaslStep> {
    const text = decodeUtf8(input);
    // RFC 5802 §7: client-first-message = gs2-header client-first-message-bare,
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const c1 = text.indexOf(",");
    const c2 = c1 < 0 ? -1 : text.indexOf(",", c1 + 1);
    if (c2 < 0) throw malformed("missing gs2 header");
    this.#checkCbindFlag(text.slice(0, c1));
    const authzPart = text.slice(c1 + 1, c2);
    if (authzPart !== "" && !authzPart.startsWith("a=")) throw malformed("bad authzid");
    this.#gs2Header = text.slice(0, c2 + 1);
    this.#clientFirstBare = text.slice(c2 + 1);

    const [first, second, ...extensions] = this.#clientFirstBare.split(",");
    // RFC 5802 §5.1: "m" announces a mandatory extension; we support none, so we must fail.
    if (first?.startsWith("m=")) throw malformed("mandatory extensions are not supported");
    if (!first?.startsWith("n=") || !second?.startsWith("r=")) throw malformed("expected n= and r=");
    checkExtensions(extensions);
    const clientNonce = second.slice(2);
    if (!PRINTABLE.test(clientNonce)) throw malformed("bad client nonce");

    const { prepped, localpart } = prepareUsername(decodeSaslname(first.slice(2)));
    if (authzPart !== "") this.#authzid = checkAuthzidForm(decodeSaslname(authzPart.slice(2)), localpart);

    const creds = await lookupCredentials(this.#ctx, localpart, this.#hash);
    this.#known = creds !== undefined;
    this.#creds = creds ?? fakeCredentials(this.#hash, prepped, this.#opts);
    this.#username = localpart ?? prepped;

    const serverNonce = (this.#opts.nonce ?? defaultNonce)();
    if (!PRINTABLE.test(serverNonce)) throw new SaslFailure("temporary-auth-failure", "bad server nonce");
    this.#nonce = clientNonce + serverNonce;
    // RFC 5802 §5.1: server-first-message = nonce "," salt "," iteration-count
    this.#serverFirst = `r=${this.#nonce},s=${this.#creds.salt.toString("base64")},i=${this.#creds.iterations}`;
    return { kind: "challenge", data: Buffer.from(this.#serverFirst, "utf8") };
  }

  #checkCbindFlag(flag: string): void {
    if (flag === "n" || flag === "y") {
      // RFC 5802 §6: a client choosing a -PLUS mechanism MUST use "p".
      if (this.#plus) throw malformed("a -PLUS mechanism needs p=<cb-name>");
      // RFC 5802 §6: "y" means the client thinks we cannot bind. We can (we offer -PLUS on this
      // connection): someone stripped -PLUS from our list, a downgrade attack.
      if (flag === "y" && channelBindingTypes(this.#ctx).length > 0) {
        throw new SaslFailure("not-authorized", "server supports channel binding");
      }
      return;
    }
    if (!flag.startsWith("p=")) throw malformed("bad gs2-cbind-flag");
    // RFC 5802 §6: channel binding requested with a mechanism that has none.
    if (!this.#plus) throw malformed("channel binding needs a -PLUS mechanism");
    const type = flag.slice(2);
    const data = (CHANNEL_BINDING_TYPES as readonly string[]).includes(type)
      ? this.#ctx.channelBinding(type as ChannelBindingType)
      : undefined;
    if (data === undefined) throw malformed("unsupported channel binding type");
    this.#cbData = data;
  }

  async #final(input: Buffer): Promise<SaslStep> {
    const text = decodeUtf8(input);
    // RFC 5802 §7: client-final-message = client-final-message-without-proof "," proof;
    // values cannot contain ",", so the last ",p=" starts the proof.
    const p = text.lastIndexOf(",p=");
    if (p < 0) throw malformed("missing proof");
    const withoutProof = text.slice(0, p);
    const proof = decodeBase64(text.slice(p + 3), "proof");
    const [cbind, nonce, ...extensions] = withoutProof.split(",");
    if (!cbind?.startsWith("c=") || !nonce?.startsWith("r=")) throw malformed("expected c= and r=");
    checkExtensions(extensions);
    decodeBase64(cbind.slice(2), "channel binding");
    const hash = this.#hash;
    if (proof.length !== HASH_LENGTH[hash]) throw malformed("proof has the wrong length");
    const creds = this.#creds!;

    // RFC 5802 §3: AuthMessage, ClientSignature, ClientKey = ClientProof XOR ClientSignature,
    // and the proof holds iff H(ClientKey) = StoredKey. Done for unknown users too (same timing).
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const clientSignature = hmac(hash, creds.storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    const proofOk = safeEqual(digest(hash, clientKey), creds.storedKey); // constant time
    const serverSignature = hmac(hash, creds.serverKey, authMessage);

    // RFC 5802 §5.1 "c": base64 of the gs2-header and, for "p", the channel-binding data.
    const expectedCbind = Buffer.concat([Buffer.from(this.#gs2Header, "utf8"), this.#cbData]).toString(
      "base64",
    );
    if (cbind.slice(2) !== expectedCbind) throw new SaslFailure("not-authorized", "channel binding mismatch");
    // RFC 5802 §5.1 "r": the final nonce must be exactly the one we sent.
    if (nonce.slice(2) !== this.#nonce) throw new SaslFailure("not-authorized", "nonce mismatch");
    if (!proofOk || !this.#known) throw new SaslFailure("not-authorized");

    const step: SaslStep = {
      kind: "success",
      username: this.#username,
      // RFC 5802 §5.1 "v", sent as <success/> additional data (RFC 6120 §6.3.10).
      data: Buffer.from(`v=${serverSignature.toString("base64")}`, "utf8"),
      ...(this.#authzid !== undefined && { authzid: this.#authzid }),
    };
    return step;
  }
}

/**
 * A SCRAM mechanism factory. -PLUS variants are available only when the connection can produce
 * channel-binding data (RFC 5802 §6); the plain variants are always available (SCRAM is safe to
 * offer before TLS, though the stream should refuse auth without TLS by policy).
 */
export function scramFactory(hash: ScramHash, plus: boolean, opts: ScramOptions = {}): SaslMechanismFactory {
  const name = mechanismName(hash, plus);
  return {
    name,
    available: (ctx) => !plus || channelBindingTypes(ctx).length > 0,
    create: (ctx) => new ScramServer(ctx, hash, plus, opts),
  };
}
