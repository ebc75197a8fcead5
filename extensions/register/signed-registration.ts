/**
 * Account creation with a form signed by an API key (XEP-0348 over XEP-0077), and without one
 * when the operator opened in-band registration.
 * References: XEP-0077 §3.1 (register; conflict for a taken user name, not-acceptable for missing
 * data), XEP-0348 §2.7 (verify with the secret of oauth_consumer_key), §3.1 (bad-request for a
 * bad signature), §6.1 (PLAINTEXT only if allowed), §6.2 (server values are never taken from the
 * client: no token is used), RFC 5849 §3.3 (timestamp and nonce: replay protection),
 * RFC 7622 §3.3 (user names are normalised localparts).
 */

import { PasswordError, preparePassword } from "../../server/accounts/scram-credentials.ts";
import { AccountError, type AccountStore } from "../../server/accounts/store.ts";
import { type JidError, normalizeLocalpart } from "../../server/jid.ts";
import type { Logger } from "../../server/observability/logger.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import type { ApiKeyStore } from "./api-keys.ts";
import type { SubmittedForm } from "./form.ts";
import { type SignatureMethod, verifySignature } from "./signature.ts";

export interface RegistrationDeps {
  readonly accounts: AccountStore;
  readonly keys: ApiKeyStore;
  readonly domain: string;
  readonly log: Logger;
  /** Seconds a signature's timestamp may differ from our clock. */
  readonly window: number;
  readonly allowPlaintext: boolean;
}

export interface Attempt {
  readonly remoteAddress: string;
  /** The iq's `to`, if the client set one. */
  readonly to: string | undefined;
}

/** Checks user name and password; returns the normalised user name. XEP-0077 §3.1: not-acceptable. */
export function checkCredentials(username: string | undefined, password: string | undefined): string {
  if (!username || !password) {
    throw new StanzaError("not-acceptable", "a user name and a password are required");
  }
  let name: string;
  try {
    name = normalizeLocalpart(username);
  } catch (err) {
    throw new StanzaError("not-acceptable", `invalid user name: ${(err as JidError).message}`);
  }
  try {
    preparePassword(password);
  } catch (err) {
    if (err instanceof PasswordError) throw new StanzaError("not-acceptable", err.message);
    throw err;
  }
  return name;
}

/** Creates the account; a taken name is XEP-0077 §3.1 conflict. */
export async function createAccount(
  accounts: AccountStore,
  username: string,
  password: string,
): Promise<void> {
  try {
    await accounts.create(username, password);
  } catch (err) {
    if (err instanceof AccountError && err.code === "exists") {
      throw new StanzaError("conflict", `the user name ${username} is taken`);
    }
    if (err instanceof PasswordError) throw new StanzaError("not-acceptable", err.message);
    throw err;
  }
}

/** The signed form path: every outcome is audited against the key named in the form. */
export async function registerWithApiKey(
  deps: RegistrationDeps,
  form: SubmittedForm,
  attempt: Attempt,
): Promise<void> {
  const keyId = form.value("oauth_consumer_key") || undefined;
  const username = form.value("username");
  const audit = (outcome: string, detail?: string, name = username) =>
    deps.keys.audit({ keyId, outcome, username: name, remoteAddress: attempt.remoteAddress, detail });
  const refuse = async (outcome: string, error: StanzaError): Promise<never> => {
    await audit(outcome, error.text);
    deps.log.info({ key: keyId, outcome, remote: attempt.remoteAddress }, "signed registration refused");
    throw error;
  };

  if (!keyId) return refuse("invalid", new StanzaError("bad-request", "oauth_consumer_key is missing"));
  const key = await deps.keys.get(keyId);
  if (!key) return refuse("unknown-key", new StanzaError("not-authorized", "unknown API key"));
  const method = form.value("oauth_signature_method") ?? "HMAC-SHA1";
  if (method !== "HMAC-SHA1" && !(method === "PLAINTEXT" && deps.allowPlaintext)) {
    return refuse("invalid", new StanzaError("bad-request", `signature method ${method} is not accepted`));
  }
  const version = form.value("oauth_version");
  if (version !== undefined && version !== "1.0") {
    return refuse("invalid", new StanzaError("bad-request", `oauth_version ${version} is not 1.0`));
  }
  const signature = form.value("oauth_signature") ?? "";
  const valid = verifySignature({
    fields: form.fields,
    method: method as SignatureMethod,
    signature,
    consumerSecret: key.secret,
    toCandidates: [attempt.to ?? deps.domain, deps.domain, ""],
  });
  if (!valid) return refuse("bad-signature", new StanzaError("bad-request", "invalid signature")); // §3.1
  const timestamp = form.value("oauth_timestamp") ?? "";
  const seconds = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : Number.NaN;
  const skew = Math.abs(Date.now() / 1000 - seconds);
  if (!(skew <= deps.window)) {
    return refuse(
      "stale-timestamp",
      new StanzaError("bad-request", `oauth_timestamp is not within ${deps.window} s of the server's clock`),
    );
  }
  const nonce = form.value("oauth_nonce") ?? "";
  if (nonce.length === 0 || nonce.length > 256) {
    return refuse("invalid", new StanzaError("bad-request", "oauth_nonce must have 1 to 256 characters"));
  }
  let name: string;
  try {
    name = checkCredentials(username, form.value("password"));
  } catch (err) {
    return refuse("invalid", err as StanzaError);
  }
  // A taken name is refused before a quota slot or the nonce is spent.
  if (await deps.accounts.exists(name)) {
    return refuse("conflict", new StanzaError("conflict", `the user name ${name} is taken`));
  }
  const reserved = await deps.keys.reserve(key.id, nonce, name);
  switch (reserved.kind) {
    case "reserved":
      break;
    case "revoked":
      return refuse("revoked", new StanzaError("not-authorized", "the API key is revoked"));
    case "expired":
      return refuse("expired", new StanzaError("not-authorized", "the API key has expired"));
    case "replayed":
      return refuse("replayed", new StanzaError("bad-request", "oauth_nonce was used before (replay)"));
    case "quota":
      return refuse(
        "quota",
        new StanzaError("not-allowed", `the API key's quota of ${reserved.max} accounts is used up`),
      );
    default:
      return refuse("unknown-key", new StanzaError("not-authorized", "unknown API key"));
  }
  try {
    await createAccount(deps.accounts, name, form.value("password")!);
  } catch (err) {
    await deps.keys.release(key.id, name);
    if (err instanceof StanzaError) return refuse(err.condition, err);
    await audit("error", (err as Error).message, name);
    throw err;
  }
  await audit("created", undefined, name);
  deps.log.info({ key: key.id, owner: key.owner, user: name }, "account created with an API key");
}
