/**
 * The registration form (XEP-0077 with a XEP-0004 data form) and reading a submitted form.
 * References: XEP-0077 §3.1 (the entity asks for the fields; username and password), §4 (extensibility
 * with data forms; the form takes precedence), XEP-0004 §3.1–§3.3 (form, submit, fields, hidden
 * FORM_TYPE), XEP-0348 §2 and §3.1 (the hidden oauth_* fields of a form that must be signed).
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { NS_SIGNATURE, type SignedField } from "./signature.ts";

export const NS_REGISTER = "jabber:iq:register";
export const NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register";
export const NS_DATA = "jabber:x:data";

function field(form: Element, attrs: Record<string, string>, value?: string, required = false): void {
  const f = form.c("field", attrs);
  if (required) f.c("required");
  if (value !== undefined) f.c("value").t(value);
}

/** XEP-0077 §3.1: the answer to a get before authentication. */
export function registrationForm(open: boolean): Element {
  const query = new Element("query", { xmlns: NS_REGISTER });
  query
    .c("instructions")
    .t(
      open
        ? "Choose a user name and a password, or sign the form with an API key (XEP-0348)."
        : "Sign this form with your API key (XEP-0348, HMAC-SHA1) to create an account.",
    );
  if (open) {
    query.c("username");
    query.c("password");
  }
  const form = query.c("x", { xmlns: NS_DATA, type: "form" });
  form.c("title").t("Create an account");
  field(form, { type: "hidden", var: "FORM_TYPE" }, NS_SIGNATURE);
  field(form, { type: "text-single", var: "username", label: "User name" }, undefined, true);
  field(form, { type: "text-private", var: "password", label: "Password" }, undefined, true);
  // XEP-0348 §2: what the signing client fills in (no token: the key alone signs, §6.2).
  field(form, { type: "hidden", var: "oauth_version" }, "1.0");
  field(form, { type: "hidden", var: "oauth_signature_method" }, "HMAC-SHA1");
  for (const name of ["oauth_nonce", "oauth_timestamp", "oauth_consumer_key", "oauth_signature"]) {
    field(form, { type: "hidden", var: name }, "");
  }
  return query;
}

/** A submitted form: its fields in document order, and single values by var. */
export interface SubmittedForm {
  readonly fields: readonly SignedField[];
  value(name: string): string | undefined;
}

export function readSubmittedForm(x: Element): SubmittedForm {
  if (x.attrs.type !== "submit") throw new StanzaError("bad-request", "the form must be of type submit");
  const fields: SignedField[] = [];
  const seen = new Set<string>();
  for (const f of x.getChildren("field")) {
    const name = f.attrs.var;
    if (!name) throw new StanzaError("bad-request", "a form field has no var");
    if (seen.has(name)) throw new StanzaError("bad-request", `field ${name} appears twice`);
    seen.add(name);
    fields.push({ var: name, values: f.getChildren("value").map((v) => v.text()) });
  }
  return {
    fields,
    value: (name) => fields.find((f) => f.var === name)?.values[0],
  };
}
