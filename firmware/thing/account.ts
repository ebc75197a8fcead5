/**
 * A thing creates its own account: XEP-0077 in-band registration before authentication, with the
 * registration form signed by the manufacturer's API key (XEP-0348, HMAC-SHA1), a random user
 * name and a random password.
 * References: XEP-0077 §3.1 (the form, then submit; `conflict` when the user name is taken),
 * XEP-0348 §2 (fill the hidden oauth_* fields, sort, escape, base string, HMAC-SHA1, Escape of
 * the Base64 signature), §2.4 (`to` of the base string: we sign for the domain, which the server
 * accepts whether or not the iq carries a `to`).
 */
import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { NS_DATA, NS_REGISTER } from "../../extensions/register/form.ts";
import {
  baseString,
  hmacSha1,
  NS_SIGNATURE,
  oauthEscape,
  parameterString,
  type SignedField,
} from "../../extensions/register/signature.ts";

export interface ApiKeyCredentials {
  /** oauth_consumer_key: the key's id. */
  readonly key: string;
  /** The consumer secret. */
  readonly secret: string;
}

/** A user name nobody else picks: a prefix and 12 random hex digits. */
export function randomUsername(prefix = "thing"): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** 24 random bytes, URL-safe Base64 (192 bits; no characters SASLprep could change). */
export function randomPassword(): string {
  return randomBytes(24).toString("base64url");
}

/** The fields of the server's form (XEP-0004), in document order, with their values. */
function fieldsOf(query: Element): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const x = query.getChild("x", NS_DATA);
  for (const f of x?.getChildren("field") ?? []) {
    const name = f.attrs.var;
    if (!name || f.attrs.type === "fixed") continue;
    fields.set(
      name,
      f.getChildren("value").map((v) => v.text()),
    );
  }
  return fields;
}

/**
 * Fills and signs the registration form the server sent (`query`, XEP-0077 §3.1) and returns the
 * `<query/>` to submit. The server's hidden fields are kept (XEP-0348 §2.2: every field is signed).
 */
export function signedRegistration(
  query: Element,
  opts: { username: string; password: string; apiKey: ApiKeyCredentials; to: string },
): Element {
  const fields = fieldsOf(query);
  if (!fields.has("FORM_TYPE")) fields.set("FORM_TYPE", [NS_SIGNATURE]);
  fields.set("username", [opts.username]);
  fields.set("password", [opts.password]);
  // XEP-0348 §2: the client's values; no token (the key alone signs, the server keeps none).
  fields.set("oauth_version", ["1.0"]);
  fields.set("oauth_signature_method", ["HMAC-SHA1"]);
  fields.set("oauth_nonce", [randomBytes(16).toString("hex")]);
  fields.set("oauth_timestamp", [String(Math.floor(Date.now() / 1000))]);
  fields.set("oauth_consumer_key", [opts.apiKey.key]);
  fields.delete("oauth_signature");
  fields.delete("oauth_token_secret");
  const signed: SignedField[] = [...fields].map(([name, values]) => ({ var: name, values }));
  const base = baseString("submit", opts.to, parameterString(signed));
  fields.set("oauth_signature", [oauthEscape(hmacSha1(base, opts.apiKey.secret))]); // §2.5

  const submit = new Element("query", { xmlns: NS_REGISTER });
  const x = submit.c("x", { xmlns: NS_DATA, type: "submit" });
  for (const [name, values] of fields) {
    const field = x.c("field", { var: name });
    for (const value of values) field.c("value").t(value);
  }
  return submit;
}
