/**
 * Errors the device client hands to its caller: an error reply to a request (with the stanza
 * error condition read back from the stanza), a request that got no answer in time, and a closed
 * or stopped client.
 * References: RFC 6120 §8.3 (stanza errors: type, defined condition, text), §8.2.3 (iq semantics).
 */
import type { Element } from "ltx";
import { NS } from "../../server/xml/namespaces.ts";
import { errorCondition } from "../../server/xml/stanza.ts";

/** A request answered with `type="error"`: `.condition` is the RFC 6120 §8.3.3 condition. */
export class XmppRequestError extends Error {
  /** The defined condition, e.g. "item-not-found"; "undefined-condition" if the reply had none. */
  readonly condition: string;
  /** RFC 6120 §8.3.2 error type (cancel, modify, auth, wait, continue), when given. */
  readonly type: string | undefined;
  /** The human-readable <text/>, when given. */
  readonly text: string | undefined;
  /** The whole error stanza as received. */
  readonly stanza: Element;

  constructor(stanza: Element) {
    const error = stanza.getChild("error");
    const condition = errorCondition(stanza) ?? "undefined-condition"; // RFC 6120 §8.3.3.21
    const text = error?.getChildText("text", NS.stanzaErrors) ?? undefined;
    super(text ? `${condition}: ${text}` : condition);
    this.name = "XmppRequestError";
    this.condition = condition;
    this.type = error?.attrs.type;
    this.text = text;
    this.stanza = stanza;
  }
}

/** No answer within the request's time limit. Has no `.condition`: nobody said no. */
export class RequestTimeoutError extends Error {
  readonly timeout = true;
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = "RequestTimeoutError";
  }
}

/** The client was stopped (or the stream closed) before the operation could finish. */
export class ClientClosedError extends Error {
  constructor(message = "the client was stopped") {
    super(message);
    this.name = "ClientClosedError";
  }
}
