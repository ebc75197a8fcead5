/**
 * The two halves of iq traffic on the device: requests we sent and wait for (matched by id and by
 * who answers), and handlers for requests we receive (by type and payload, answered exactly once).
 * References: RFC 6120 §8.2.3 (iq semantics: one payload, exactly one reply, service-unavailable
 * for an unknown payload), §8.1.2.1 and §10.3.3 (a reply must come from the entity asked; no `to`
 * means our own account or server), §8.3 (error replies).
 */
import type { Element } from "ltx";
import { tryParseJid } from "../../server/jid.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { errorReply, iqResult } from "../../server/xml/stanza.ts";
import { ClientClosedError, RequestTimeoutError, XmppRequestError } from "./errors.ts";

export type IqHandler = (iq: Element) => Promise<Element | undefined> | Element | undefined;

/** Most requests awaiting an answer at once; a runaway caller gets an error instead of memory growth. */
const MAX_PENDING = 10_000;

interface Pending {
  readonly to: string | undefined;
  readonly resolve: (reply: Element) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Same address, compared after normalisation (case of localpart and domain, RFC 7622). */
function sameJid(a: string, b: string): boolean {
  return a === b || (tryParseJid(a)?.full ?? a) === (tryParseJid(b)?.full ?? b);
}

export class PendingRequests {
  readonly #pending = new Map<string, Pending>();

  /** Registers a request sent (or about to be sent) with this id and `to`. */
  wait(id: string, to: string | undefined, timeoutMs: number): Promise<Element> {
    if (this.#pending.has(id)) return Promise.reject(new Error(`a request with id ${id} is already waiting`));
    if (this.#pending.size >= MAX_PENDING) return Promise.reject(new Error("too many requests in flight"));
    return new Promise<Element>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RequestTimeoutError(`iq ${id}${to ? ` to ${to}` : ""}`, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { to, resolve, reject, timer });
    });
  }

  /**
   * Settles the request this result or error answers. Returns false if it answers nothing we
   * asked, including a reply from someone other than the entity we asked (a spoofing attempt or
   * a confused peer: RFC 6120 §8.1.2.1).
   */
  settle(reply: Element, ownJid: string | undefined): boolean {
    const id = reply.attrs.id;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (!pending || !this.#fromMatches(reply.attrs.from, pending.to, ownJid)) return false;
    this.#pending.delete(id!);
    clearTimeout(pending.timer);
    if (reply.attrs.type === "error") pending.reject(new XmppRequestError(reply));
    else pending.resolve(reply);
    return true;
  }

  /** Fails every waiting request (the client stopped). */
  rejectAll(err: Error = new ClientClosedError()): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }

  #fromMatches(from: string | undefined, to: string | undefined, ownJid: string | undefined): boolean {
    const ownBare = ownJid?.split("/")[0];
    const ownDomain = ownBare?.includes("@") ? ownBare.split("@")[1] : ownBare;
    // RFC 6120 §10.3.3: a request without `to` is handled by our server for our account, and
    // the reply comes without `from` or from our bare JID or our domain.
    if (to === undefined || (ownBare !== undefined && sameJid(to, ownBare))) {
      return (
        from === undefined ||
        (ownBare !== undefined && sameJid(from, ownBare)) ||
        (ownDomain !== undefined && sameJid(from, ownDomain)) ||
        (to !== undefined && sameJid(from, to))
      );
    }
    return from !== undefined && sameJid(from, to);
  }
}

/** Most inbound requests being handled at once; more get resource-constraint (RFC 6120 §8.3.3.18). */
const MAX_CONCURRENT_HANDLERS = 64;

/** Handlers for inbound iq get/set, keyed by type and payload (qualified name). */
export class IqHandlers {
  readonly #handlers = new Map<string, IqHandler>();
  #active = 0;

  on(type: "get" | "set", ns: string, name: string, handler: IqHandler): void {
    this.#handlers.set(`${type} ${ns} ${name}`, handler);
  }

  /**
   * The reply to a request: the handler's payload in a result, the StanzaError it threw, or
   * service-unavailable when nobody handles this payload (RFC 6120 §8.2.3, §8.4). Other
   * exceptions become internal-server-error and are passed to `onFault`.
   */
  async answer(iq: Element, onFault: (err: unknown) => void): Promise<Element> {
    const payloads = iq.getChildElements();
    // RFC 6120 §8.2.3: a get or set carries exactly one payload.
    if (payloads.length !== 1) {
      return errorReply(iq, new StanzaError("bad-request", "an iq get or set needs exactly one payload"));
    }
    const payload = payloads[0]!;
    const handler = this.#handlers.get(`${iq.attrs.type} ${payload.attrs.xmlns ?? ""} ${payload.name}`);
    if (!handler) return errorReply(iq, new StanzaError("service-unavailable"));
    // A peer flooding us with requests gets told to wait instead of growing our memory.
    if (this.#active >= MAX_CONCURRENT_HANDLERS) {
      return errorReply(iq, new StanzaError("resource-constraint", "too many requests at once"));
    }
    this.#active++;
    try {
      return iqResult(iq, (await handler(iq)) ?? undefined);
    } catch (err) {
      if (err instanceof StanzaError) return errorReply(iq, err);
      onFault(err);
      return errorReply(iq, new StanzaError("internal-server-error"));
    } finally {
      this.#active--;
    }
  }
}
