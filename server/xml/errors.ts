/**
 * Stanza and stream errors as values a handler can throw.
 * References: RFC 6120 §4.9 (stream errors), §8.3 (stanza errors), §8.3.3 (conditions).
 */
import { Element } from "ltx";
import { NS } from "./namespaces.ts";

/** RFC 6120 §8.3.2: the error type tells the sender what to do next. */
export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** RFC 6120 §8.3.3, with the type each condition normally carries. */
export const STANZA_ERROR_TYPES = {
  "bad-request": "modify",
  conflict: "cancel",
  "feature-not-implemented": "cancel",
  forbidden: "auth",
  gone: "cancel",
  "internal-server-error": "cancel",
  "item-not-found": "cancel",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "not-allowed": "cancel",
  "not-authorized": "auth",
  "policy-violation": "modify",
  "recipient-unavailable": "wait",
  redirect: "modify",
  "registration-required": "auth",
  "remote-server-not-found": "cancel",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "service-unavailable": "cancel",
  "subscription-required": "auth",
  "undefined-condition": "cancel",
  "unexpected-request": "wait",
} as const satisfies Record<string, StanzaErrorType>;

export type StanzaErrorCondition = keyof typeof STANZA_ERROR_TYPES;

export class StanzaError extends Error {
  readonly condition: StanzaErrorCondition;
  readonly type: StanzaErrorType;
  readonly text: string | undefined;
  /** Extra application-specific child of <error/> (RFC 6120 §8.3.2). */
  readonly appElement: Element | undefined;

  constructor(
    condition: StanzaErrorCondition,
    text?: string,
    opts: { type?: StanzaErrorType; appElement?: Element } = {},
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = "StanzaError";
    this.condition = condition;
    this.type = opts.type ?? STANZA_ERROR_TYPES[condition];
    this.text = text;
    this.appElement = opts.appElement;
  }

  /** The <error/> child for an error stanza. `by` is the entity that found the error (§8.3.2). */
  toElement(by?: string): Element {
    const error = new Element("error", by ? { type: this.type, by } : { type: this.type });
    error.c(this.condition, { xmlns: NS.stanzaErrors });
    if (this.text) error.c("text", { xmlns: NS.stanzaErrors, "xml:lang": "en" }).t(this.text);
    if (this.appElement) error.cnode(this.appElement);
    return error;
  }
}

/** RFC 6120 §4.9.3 */
export type StreamErrorCondition =
  | "bad-format"
  | "bad-namespace-prefix"
  | "conflict"
  | "connection-timeout"
  | "host-gone"
  | "host-unknown"
  | "improper-addressing"
  | "internal-server-error"
  | "invalid-from"
  | "invalid-namespace"
  | "invalid-xml"
  | "not-authorized"
  | "not-well-formed"
  | "policy-violation"
  | "remote-connection-failed"
  | "reset"
  | "resource-constraint"
  | "restricted-xml"
  | "see-other-host"
  | "system-shutdown"
  | "undefined-condition"
  | "unsupported-encoding"
  | "unsupported-feature"
  | "unsupported-stanza-type"
  | "unsupported-version";

export class StreamError extends Error {
  readonly condition: StreamErrorCondition;
  readonly text: string | undefined;

  constructor(condition: StreamErrorCondition, text?: string) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = "StreamError";
    this.condition = condition;
    this.text = text;
  }

  /** RFC 6120 §4.9.2: <stream:error> with the condition and an optional text. */
  toElement(): Element {
    const error = new Element("stream:error");
    error.c(this.condition, { xmlns: NS.streamErrors });
    if (this.text) error.c("text", { xmlns: NS.streamErrors, "xml:lang": "en" }).t(this.text);
    return error;
  }
}

/** RFC 6120 §6.5: SASL failure conditions. */
export type SaslFailureCondition =
  | "aborted"
  | "account-disabled"
  | "credentials-expired"
  | "encryption-required"
  | "incorrect-encoding"
  | "invalid-authzid"
  | "invalid-mechanism"
  | "malformed-request"
  | "mechanism-too-weak"
  | "not-authorized"
  | "temporary-auth-failure";

export class SaslFailure extends Error {
  readonly condition: SaslFailureCondition;
  readonly text: string | undefined;
  constructor(condition: SaslFailureCondition, text?: string) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = "SaslFailure";
    this.condition = condition;
    this.text = text;
  }
}
