/**
 * XmppClient: the device's connection to its XMPP server (Hanse or any other). It keeps one
 * session alive — TLS always, SCRAM, resource binding, XEP-0198 with resumption — reconnects with
 * exponential backoff and jitter, queues what the application sends while offline, answers iq
 * requests through registered handlers, and matches replies to its own requests.
 *
 * Delivery guarantees of `send()`:
 * - while offline (reconnecting) stanzas are queued (bounded: the oldest are dropped with a warning
 *   past `maxQueuedStanzas`) and sent once online again, in order;
 * - with stream management, a stanza written but not acknowledged when the connection dies is sent
 *   again: on resumption exactly once; after a failed resumption it is sent again on the new
 *   session, so the peer may see a duplicate (XEP-0198 §6 cannot do better), never a loss;
 * - without stream management, stanzas written into a connection that dies may be lost.
 *
 * After a fresh (non-resumed) login the client sends initial presence (unless `presence: false`):
 * the last broadcast presence the application sent, or a plain `<presence/>`.
 *
 * References: RFC 6120 §4.6.1 (whitespace keepalive), §4.9.3.3 (conflict), §8.2.3 (iq); RFC 6121
 * §4.2 (initial presence), §4.5 (unavailable presence); XEP-0198 §5-§6; XEP-0199 §4 (answering
 * server pings).
 */
import { EventEmitter } from "node:events";
import { Element } from "ltx";
import { StreamError } from "../../server/xml/errors.ts";
import { NS } from "../../server/xml/namespaces.ts";
import { stanzaKind } from "../../server/xml/stanza.ts";
import type { Log } from "./connection.ts";
import { ClientClosedError } from "./errors.ts";
import { type IqHandler, IqHandlers, PendingRequests } from "./iq.ts";
import { backoffDelay, startKeepalive } from "./liveness.ts";
import type { XmppClientEvents, XmppClientOptions } from "./options.ts";
import { isBroadcastPresence, Outbox } from "./outbox.ts";
import { ChannelBindingRefused, isFinalAuthFailure } from "./sasl.ts";
import { newId, openSession, resourceOf, type Session } from "./session.ts";
import { type ClientStreamManagement, NS_SM } from "./stream-management.ts";

export type { XmppClientEvents, XmppClientOptions };

/** A session that lasted this long resets the reconnection backoff. */
const STABLE_SESSION_MS = 30_000;

const noLog: Log = () => {};

export class XmppClient extends EventEmitter<XmppClientEvents> {
  readonly #opts: XmppClientOptions;
  readonly #log: Log;
  readonly #timeoutMs: number;
  readonly #iq = new IqHandlers();
  readonly #pending = new PendingRequests();
  readonly #listeners = new Set<(stanza: Element) => void>();
  readonly #outbox: Outbox;
  #session: Session | undefined;
  #connecting: { destroy(err?: Error): void } | undefined;
  /** Stream management of the last session; kept across a disconnection to resume or resend. */
  #sm: ClientStreamManagement | undefined;
  #resumable = false;
  #jid: string | undefined;
  #mechanism: string | undefined;
  #online = false;
  #stopped = false;
  #started: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined;
  #firstOnline = false;
  #wake: (() => void) | undefined;
  #keepalive: NodeJS.Timeout | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  /** The server refused our channel binding once: SCRAM without -PLUS from now on. */
  #avoidChannelBinding = false;

  constructor(opts: XmppClientOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.log ?? noLog;
    this.#timeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.#outbox = new Outbox(opts.maxQueuedStanzas ?? 1000, this.#log);
    // XEP-0199 §4: a server ping is answered with an empty result.
    this.onIq("get", NS.ping, "ping", () => undefined);
  }

  /** Full JID once bound. */
  get jid(): string | undefined {
    return this.#jid;
  }

  /** The SASL mechanism of the current (or last) session. */
  get mechanism(): string | undefined {
    return this.#mechanism;
  }

  /** Whether the current session has XEP-0198 stream management. */
  get streamManagement(): boolean {
    return this.#sm !== undefined;
  }

  get online(): boolean {
    return this.#online;
  }

  /** Resolves when online the first time; rejects on an authentication failure or stop(). */
  start(): Promise<void> {
    if (this.#stopped) return Promise.reject(new ClientClosedError());
    if (!this.#started) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Also observed here: a caller that started without awaiting must not crash the process
      // with an unhandled rejection when it stops early (the log and "error" event still tell).
      promise.catch(() => {});
      this.#started = { promise, resolve, reject };
      void this.#run();
    }
    return this.#started.promise;
  }

  /** Says goodbye (unavailable presence, closing the stream) and stops reconnecting. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    this.#connecting?.destroy(new ClientClosedError());
    this.#pending.rejectAll();
    if (!this.#firstOnline) this.#started?.reject(new ClientClosedError());
    const session = this.#session;
    if (session && this.#online) {
      session.conn.send(new Element("presence", { type: "unavailable" })); // RFC 6121 §4.5.1
      await session.conn.close();
    } else {
      session?.conn.destroy();
    }
  }

  /** Sends a stanza now, or queues it while reconnecting (see the file comment for guarantees). */
  send(stanza: Element): void {
    if (this.#stopped) {
      this.#log("warn", "stanza dropped: the client is stopped", { name: stanza.name });
      return;
    }
    this.#outbox.noteSent(stanza);
    if (this.#online && this.#session) {
      this.#write(stanza);
      return;
    }
    this.#outbox.queue(stanza);
  }

  /** Sends an iq get/set (adding an id if it has none) and resolves with the result. */
  request(iq: Element, timeoutMs: number = this.#timeoutMs): Promise<Element> {
    if (iq.name !== "iq" || (iq.attrs.type !== "get" && iq.attrs.type !== "set")) {
      return Promise.reject(new TypeError("request() needs an <iq type='get'|'set'>"));
    }
    if (this.#stopped) return Promise.reject(new ClientClosedError());
    iq.attrs.id ||= newId();
    const reply = this.#pending.wait(iq.attrs.id, iq.attrs.to, timeoutMs);
    this.send(iq);
    return reply;
  }

  /** Handles inbound iq `type` whose payload is `<name xmlns=ns>`. */
  onIq(type: "get" | "set", ns: string, name: string, handler: IqHandler): void {
    this.#iq.on(type, ns, name, handler);
  }

  /** Every inbound message, presence and iq result/error. Returns the unsubscribe function. */
  onStanza(listener: (stanza: Element) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #run(): Promise<void> {
    const reconnect = this.#opts.reconnect ?? {};
    const delays = reconnect === false ? {} : reconnect;
    const initial = delays.initialDelayMs || 1000;
    const max = Math.max(initial, delays.maxDelayMs || 60_000);
    const backoff = (attempt: number) => backoffDelay(attempt, initial, max);
    let attempt = 0;
    while (!this.#stopped) {
      let session: Session;
      try {
        session = await openSession(
          {
            ...this.#opts,
            // Rebinding keeps the full JID the device had: peers and rules may know it.
            ...(this.#opts.resource === undefined && this.#jid && { resource: resourceOf(this.#jid) }),
            streamManagement: this.#opts.streamManagement ?? true,
            stepTimeoutMs: this.#timeoutMs,
            avoidChannelBinding: this.#avoidChannelBinding,
            log: this.#log,
            onConnection: (conn) => {
              this.#connecting = conn;
            },
          },
          this.#resumable ? this.#sm : undefined,
        );
      } catch (err) {
        this.#connecting = undefined;
        if (this.#stopped) return;
        const error = err instanceof Error ? err : new Error(String(err));
        if (error instanceof ChannelBindingRefused && !this.#avoidChannelBinding) {
          // Some servers offer -PLUS and then cannot check it (RFC 5802 §6). Still SCRAM, still
          // mutual authentication, still inside verified TLS; only the binding is given up.
          this.#log("warn", "channel binding refused; trying again without it", {
            mechanism: error.mechanism,
          });
          this.#avoidChannelBinding = true;
          continue;
        }
        if (isFinalAuthFailure(error) || reconnect === false) {
          this.#log("error", "login failed; not retrying", { error: error.message });
          this.#fail(error);
          return;
        }
        this.#log("warn", "login failed; retrying", { error: error.message, attempt });
        await this.#sleep(backoff(attempt++));
        continue;
      }
      this.#connecting = undefined;
      if (this.#stopped) {
        await session.conn.close();
        return;
      }
      const closed = new Promise<Error | undefined>((resolve) => session.conn.once("close", resolve));
      this.#goOnline(session);
      const onlineAt = Date.now();
      const error = await closed;
      // Only a session that lasted counts as success: a server that lets us in and throws us out
      // at once must not be hammered at the shortest delay.
      if (Date.now() - onlineAt > STABLE_SESSION_MS) attempt = 0;
      this.#goOffline(error);
      if (this.#stopped) return;
      if (reconnect === false) {
        this.#stopped = true;
        this.#pending.rejectAll(new ClientClosedError("connection lost and reconnect is off"));
        return;
      }
      let delay = backoff(attempt++);
      // A stream error is the server ending the session on purpose: nothing to resume.
      this.#resumable = !(error instanceof StreamError);
      if (error instanceof StreamError && error.condition === "conflict") {
        // RFC 6120 §4.9.3.3: another connection took our resource. Coming straight back would
        // throw it out in turn, forever: wait long and tell the application.
        this.#emitError(error);
        delay = max;
        attempt = 30;
      }
      this.#log("info", "reconnecting", { delayMs: Math.round(delay), error: error?.message });
      await this.#sleep(delay);
    }
  }

  #goOnline(session: Session): void {
    this.#session = session;
    this.#jid = session.jid;
    this.#mechanism = session.mechanism;
    let resend: Element[];
    if (session.resumed) {
      resend = [];
    } else {
      // A new session: what the old one left unacknowledged goes out again (duplicates possible).
      resend = (this.#sm?.takeUnacked() ?? []).filter((el) => !isBroadcastPresence(el));
      this.#sm = session.sm;
    }
    this.#resumable = this.#sm?.token !== undefined;
    this.#online = true;
    this.#log("info", session.resumed ? "session resumed" : "online", {
      jid: session.jid,
      mechanism: session.mechanism,
      streamManagement: this.#sm !== undefined,
    });
    if (session.resumed) {
      // XEP-0198 §6: resend what the server has not acknowledged, under the same numbers.
      for (const el of this.#sm!.pending()) session.conn.send(el);
    } else if (this.#opts.presence ?? true) {
      this.#write(this.#outbox.initialPresence());
    }
    for (const el of resend) this.#write(el);
    for (const el of this.#outbox.drain()) this.#write(el);
    let uncounted = session.uncounted;
    session.conn.deliverTo((el) => {
      const counted = stanzaKind(el) !== undefined && uncounted-- <= 0;
      this.#onElement(el, session, counted);
    });
    this.#startKeepalive(session);
    this.#firstOnline = true;
    this.#started?.resolve();
    this.#emitSafely("online", { resumed: session.resumed });
  }

  #goOffline(error: Error | undefined): void {
    const wasOnline = this.#online;
    this.#online = false;
    this.#session = undefined;
    clearInterval(this.#keepalive);
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (wasOnline) {
      this.#log(error ? "warn" : "info", "offline", { error: error?.message });
      this.#emitSafely("offline", error && !this.#stopped ? { error } : {});
    }
  }

  #fail(error: Error): void {
    this.#stopped = true;
    this.#pending.rejectAll(error);
    if (!this.#firstOnline) this.#started?.reject(error);
    this.#emitError(error);
  }

  /** Writes on the live session, counting it for stream management and asking for an ack soon. */
  #write(stanza: Element): void {
    const session = this.#session!;
    const sm = this.#sm;
    if (sm) {
      sm.sent(stanza);
      // XEP-0198 §5: one <r/> per burst keeps the unacknowledged queue short.
      this.#ackTimer ??= setTimeout(() => {
        this.#ackTimer = undefined;
        if (this.#online && sm.state.unackedCount > 0) sm.requestAck(session.conn);
      }, 50);
    }
    session.conn.send(stanza);
  }

  #onElement(el: Element, session: Session, counted: boolean): void {
    if (el.attrs.xmlns === NS_SM) {
      const problem = this.#sm?.handle(el, session.conn);
      if (problem) session.conn.destroy(new Error(problem));
      return;
    }
    const kind = stanzaKind(el);
    if (kind === undefined) {
      this.#log("debug", "ignoring unknown top-level element", { name: el.name, xmlns: el.attrs.xmlns });
      return;
    }
    if (counted) this.#sm?.received();
    const type = el.attrs.type;
    if (kind === "iq" && (type === "get" || type === "set")) {
      void this.#answer(el);
      return;
    }
    if (kind === "iq" && type !== "result" && type !== "error") return; // RFC 6120 §8.2.3: invalid type
    if (kind === "iq") this.#pending.settle(el, this.#jid);
    for (const listener of this.#listeners) {
      try {
        listener(el);
      } catch (err) {
        this.#log("error", "stanza listener threw", { error: String(err) });
      }
    }
    if (kind !== "iq") this.#emitSafely(kind, el);
  }

  async #answer(iq: Element): Promise<void> {
    const reply = await this.#iq.answer(iq, (err) =>
      this.#log("error", "iq handler failed", { error: err instanceof Error ? err.message : String(err) }),
    );
    this.send(reply);
  }

  #startKeepalive(session: Session): void {
    this.#keepalive = startKeepalive({
      conn: session.conn,
      sm: () => this.#sm,
      idleMs: this.#opts.keepaliveMs ?? 60_000,
      ackTimeoutMs: this.#timeoutMs,
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #emitError(err: Error): void {
    // An "error" event without a listener would throw; the log always has it.
    if (this.listenerCount("error") > 0) this.#emitSafely("error", err);
  }

  #emitSafely<K extends keyof XmppClientEvents>(event: K, ...args: XmppClientEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: XmppClientEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#log("error", `${event} listener threw`, { error: String(err) });
    }
  }
}

export { registerAccount } from "./register.ts";
