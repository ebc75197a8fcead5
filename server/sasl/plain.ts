/**
 * PLAIN server mechanism, offered only on an encrypted stream.
 * References: RFC 4616 §2 (message = [authzid] UTF8NUL authcid UTF8NUL passwd), RFC 6120 §6.4.2 and
 * §13.9.4 (never offer PLAIN in the clear), §6.5.3 (encryption-required), RFC 4013 (SASLprep),
 * RFC 5802 §3 (SaltedPassword, ClientKey, StoredKey).
 *
 * Why it looks like this: we store SCRAM keys, not passwords. To check a PLAIN password we run the
 * SCRAM derivation (PBKDF2 = Hi) with the account's stored salt and iteration count and compare
 * StoredKey in constant time. SHA-256 credentials are preferred. PBKDF2 runs on the libuv pool
 * (async) so a login does not stall the event loop; an unknown user costs the same PBKDF2 over fake
 * credentials so the timing does not reveal whether the account exists.
 */
import { pbkdf2 } from "node:crypto";
import { promisify } from "node:util";
import saslprep from "@mongodb-js/saslprep";
import { SaslFailure } from "../xml/errors.ts";
import type { SaslContext, SaslMechanismFactory, SaslServerMechanism, SaslStep } from "./mechanism.ts";
import {
  checkAuthzidForm,
  decodeUtf8,
  digest,
  type FakeCredentialOptions,
  fakeCredentials,
  hmac,
  lookupCredentials,
  malformed,
  prepareUsername,
  safeEqual,
} from "./scram.ts";

const pbkdf2Async = promisify(pbkdf2);
const HASH_LENGTH = { sha1: 20, sha256: 32 } as const;

class PlainServer implements SaslServerMechanism {
  readonly name = "PLAIN";
  readonly #ctx: SaslContext;
  readonly #opts: FakeCredentialOptions;
  #done = false;

  constructor(ctx: SaslContext, opts: FakeCredentialOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
  }

  async step(input: Buffer): Promise<SaslStep> {
    if (this.#done) throw malformed("the exchange is over");
    this.#done = true;
    // RFC 6120 §13.9.4: never accept a password in the clear, even if a client sends one unasked.
    if (!this.#ctx.secure) throw new SaslFailure("encryption-required");

    // RFC 4616 §2: exactly two NULs; authcid and passwd are non-empty.
    const parts = decodeUtf8(input).split("\0");
    if (parts.length !== 3) throw malformed("expected authzid NUL authcid NUL passwd");
    const [authzidRaw, authcid, passwdRaw] = parts as [string, string, string];
    if (authcid.length === 0 || passwdRaw.length === 0) throw malformed("empty user name or password");

    const { prepped, localpart } = prepareUsername(authcid);
    const authzid = authzidRaw === "" ? undefined : checkAuthzidForm(authzidRaw, localpart);
    let password: string;
    try {
      password = saslprep(passwdRaw, { allowUnassigned: true }); // RFC 4616 §2: SASLprep, query string
    } catch {
      throw malformed("password fails SASLprep");
    }
    if (password.length === 0) throw malformed("empty password");

    const creds =
      (await lookupCredentials(this.#ctx, localpart, "sha256")) ??
      (await lookupCredentials(this.#ctx, localpart, "sha1"));
    const known = creds !== undefined;
    const used = creds ?? fakeCredentials("sha256", prepped, this.#opts);
    const hash = used.hash;

    // RFC 5802 §3: SaltedPassword = Hi(Normalize(password), salt, i) (Hi is PBKDF2 with HMAC-H),
    // ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey).
    const salted = await pbkdf2Async(
      Buffer.from(password, "utf8"),
      used.salt,
      used.iterations,
      HASH_LENGTH[hash],
      hash,
    );
    const storedKey = digest(hash, hmac(hash, salted, "Client Key"));
    const ok = safeEqual(storedKey, used.storedKey);
    if (!ok || !known) throw new SaslFailure("not-authorized");
    return { kind: "success", username: localpart!, ...(authzid !== undefined && { authzid }) };
  }
}

/** PLAIN: available only when the stream is encrypted (RFC 6120 §6.4.2). */
export function plainFactory(opts: FakeCredentialOptions = {}): SaslMechanismFactory {
  return {
    name: "PLAIN",
    available: (ctx) => ctx.secure,
    create: (ctx) => new PlainServer(ctx, opts),
  };
}
