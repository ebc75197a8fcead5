/**
 * A client-to-server stream and the session it binds: header, STARTTLS, SASL, resource binding,
 * stanzas to the router, and the life cycle of XEP-0198 stream management (enabling, hibernating
 * while the session may be resumed, moving it onto the resuming connection). The XEP-0198
 * bookkeeping itself (acks, resend, unacknowledged stanzas at the end) is c2s-stream-management.ts.
 * References: RFC 6120 §4 (streams), §5 (STARTTLS), §7 (resource binding), §8.1.2.1 (from
 * stamping), §8.2.3 (iq rules), RFC 3921 §3 (legacy session), RFC 6121 §4 (availability),
 * XEP-0198 §3–§6, XEP-0199 §4.1 (server-to-client ping).
 */
import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { type Jid, type JidError, parseJid, tryParseJid } from "../jid.ts";
import type { LocalSession } from "../modules/module.ts";
import type { Logger } from "../observability/logger.ts";
import { StanzaError, StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { errorReply, iqResult, stanzaKind } from "../xml/stanza.ts";
import type { C2sDeps, StreamLifecycle } from "./c2s-deps.ts";
import { c2sStreamFeatures } from "./c2s-features.ts";
import { SaslNegotiator } from "./c2s-sasl.ts";
import {
  idlePing,
  iqProblem,
  isIdlePingAnswer,
  namesSelf,
  presencePriority,
  resourceToBind,
} from "./c2s-stanza-rules.ts";
import {
  type ClientSm,
  enableStreamManagement,
  handledCountTooHigh,
  handOnUndelivered,
  smFailed,
} from "./c2s-stream-management.ts";
import { NS_SM, parseH } from "./stream-management.ts";
import type { StreamHandler, XmlConnection } from "./xml-connection.ts";

export type { C2sDeps, C2sEvents, C2sSettings, StreamLifecycle } from "./c2s-deps.ts";

type Phase = "header" | "tls" | "auth" | "bind" | "ready";

export class C2sStream implements LocalSession {
  readonly id: string;
  jid!: Jid;
  priority = 0;
  available = false;
  presence: Element | undefined;
  /** Resolves when the session has ended and its unacknowledged stanzas were handed on. */
  readonly ended: Promise<void>;
  private conn: XmlConnection;
  private readonly deps: C2sDeps;
  private readonly log: Logger;
  private readonly lifecycle: StreamLifecycle;
  private readonly sasl: SaslNegotiator;
  private phase: Phase = "header";
  private username: string | undefined;
  private authTimer: NodeJS.Timeout | undefined;
  private bound = false;
  private idlePingSentAt: number | undefined;
  /** Set by an initial available presence until the event for it is emitted. */
  private initialPresence = false;
  private sm: ClientSm | undefined;
  private finished = false;
  /** This stream resumed another session and handed its connection over. */
  private absorbed = false;
  private resolveEnded!: () => void;

  constructor(conn: XmlConnection, deps: C2sDeps, lifecycle: StreamLifecycle = {}) {
    this.conn = conn;
    this.lifecycle = lifecycle;
    this.deps = deps;
    this.id = conn.id;
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    this.log = deps.log.child({ conn: conn.id, remote: conn.remoteAddress });
    this.sasl = new SaslNegotiator(conn, {
      domain: deps.domain,
      requireTls: deps.settings.requireTls,
      maxAuthFailures: deps.settings.maxAuthFailures,
      credentials: deps.credentials,
      ...(deps.mechanisms && { mechanisms: deps.mechanisms }),
      metrics: deps.metrics,
      log: this.log,
    });
    deps.metrics.connections.inc({ kind: "c2s", state: "connected" });
    // Unauthenticated connections get a short deadline (slow-loris and flood protection).
    this.authTimer = setTimeout(
      () => this.conn.streamError("connection-timeout", "authentication took too long"),
      deps.settings.authTimeoutMs,
    );
    this.authTimer.unref();
    conn.setIdleTimeout(deps.settings.idleTimeoutMs);
    conn.start(this.handler());
  }

  get authenticated(): boolean {
    return this.username !== undefined;
  }

  // LocalSession
  send(stanza: Element): boolean {
    if (this.finished) return false;
    const sm = this.sm;
    if (sm) {
      sm.sent(stanza);
      if (sm.unackedCount > this.deps.settings.maxUnacked) {
        this.log.warn({ unacked: sm.unackedCount }, "client does not acknowledge stanzas: closing");
        this.close("resource-constraint", "too many unacknowledged stanzas");
        return true; // counted and queued: it goes to offline storage with the rest
      }
      if (sm.hibernating) return true; // kept for the resend after resumption (XEP-0198 §6)
      sm.requestAck();
    }
    return this.conn.send(stanza);
  }

  close(condition?: string, text?: string): void {
    if (this.sm?.hibernating) this.finish(condition ?? "closed");
    else if (condition) this.conn.streamError(condition as StreamError["condition"], text);
    else this.conn.close();
  }

  private handler(): StreamHandler {
    return {
      onHeader: (attrs) => this.onHeader(attrs),
      onElement: (el) => this.onElement(el),
      onClosed: (reason) => this.onClosed(reason),
      onIdle: () => this.onIdle(),
    };
  }

  private onHeader(attrs: Record<string, string>): void {
    const streamId = randomBytes(12).toString("base64url");
    // RFC 6120 §4.7.1: we answer from our domain, whatever the client asked for.
    this.conn.sendHeader({ from: this.deps.domain, id: streamId });
    if (attrs.to && tryParseJid(attrs.to)?.domain !== this.deps.domain) {
      throw new StreamError("host-unknown", `this server serves ${this.deps.domain}`); // RFC 6120 §4.9.3.6
    }
    if (!attrs.version || Number.parseFloat(attrs.version) < 1) {
      throw new StreamError("unsupported-version", "XMPP 1.0 streams only"); // RFC 6120 §4.7.5
    }
    this.conn.send(this.features());
  }

  private features(): Element {
    const { features, step } = c2sStreamFeatures({
      secure: this.conn.secure,
      authenticated: this.authenticated,
      requireTls: this.deps.settings.requireTls,
      sasl: this.sasl,
      preAuthFeatures: this.deps.preAuth?.features ?? [],
      sessionFeatures: this.deps.streamFeatures,
    });
    this.phase = step;
    return features;
  }

  private async onElement(el: Element): Promise<void> {
    const ns = el.attrs.xmlns;
    if (this.phase === "header") throw new StreamError("not-authorized", "stream header expected");
    if (ns === NS.tls) return this.onStartTls(el);
    if (ns === NS.sasl) return this.onSasl(el);
    if (this.phase === "auth" && el.name === "iq" && (ns === undefined || ns === NS.client)) {
      const reply = this.preAuthReply(el); // e.g. XEP-0077 §3: registration before authentication
      if (reply) {
        this.conn.send(await reply);
        return;
      }
    }
    if (this.phase !== "bind" && this.phase !== "ready") {
      // RFC 6120 §4.3.3: no stanzas before the mandatory features (TLS, SASL) are negotiated.
      throw new StreamError("not-authorized", "authenticate first");
    }
    if (ns === NS_SM) return this.onStreamManagement(el);
    if (!stanzaKind(el) || (ns !== undefined && ns !== NS.client)) {
      throw new StreamError("unsupported-stanza-type", `<${el.name}/> is not a stanza`); // RFC 6120 §4.9.3.24
    }
    if (this.phase === "bind") return this.onBindPhase(el);
    this.sm?.received(); // XEP-0198 §4: every stanza counts, whatever becomes of it
    return this.onStanza(el);
  }

  /**
   * An iq before authentication that a module answers (never routed): its reply, or undefined
   * when nobody handles it (then it is refused like any stanza before authentication).
   */
  private preAuthReply(iq: Element): Promise<Element> | undefined {
    const type = iq.attrs.type;
    if ((type !== "get" && type !== "set") || iqProblem(iq)) return undefined;
    delete iq.attrs.from; // no JID yet (RFC 6120 §8.1.2.1)
    const stream = { id: this.id, remoteAddress: this.conn.remoteAddress, secure: this.conn.secure };
    return this.deps.preAuth?.handle(iq, stream);
  }

  private async onStartTls(el: Element): Promise<void> {
    if (el.name !== "starttls" || this.conn.secure || this.authenticated) {
      throw new StreamError("policy-violation", "STARTTLS is not expected now");
    }
    // RFC 6120 §5.4.2.3: proceed, then the handshake on the same socket.
    this.phase = "header";
    this.conn.send(new Element("proceed", { xmlns: NS.tls }));
    try {
      await this.conn.startTls(this.deps.tls);
    } catch {
      // The connection is already torn down; RFC 6120 §5.4.3.2 gives nothing more to send.
    }
  }

  private async onSasl(el: Element): Promise<void> {
    if (this.authenticated || (this.phase !== "auth" && this.phase !== "tls")) {
      throw new StreamError("policy-violation", "SASL is not expected now");
    }
    const username = await this.sasl.handle(el);
    if (!username) return;
    this.username = username;
    this.conn.resetStream(); // RFC 6120 §6.4.6
    this.phase = "header";
    this.deps.metrics.connections.inc({ kind: "c2s", state: "authenticated" });
    this.lifecycle.authenticated?.();
  }

  /** RFC 6120 §7: only <bind/> (and the legacy <session/>) are allowed before a resource is bound. */
  private onBindPhase(el: Element): void {
    const payload = el.getChildElements()[0];
    if (el.name === "iq" && el.attrs.type === "set" && payload?.is("bind", NS.bind)) {
      this.bind(el, payload);
    } else if (el.name === "iq") {
      this.conn.send(errorReply(el, new StanzaError("not-authorized", "bind a resource first")));
    } else {
      throw new StreamError("not-authorized", "bind a resource first");
    }
  }

  private bind(iq: Element, payload: Element): void {
    const requested = payload.getChildText("resource");
    let resource: string;
    try {
      resource = resourceToBind(requested);
    } catch (err) {
      // RFC 6120 §7.7.2.1
      this.conn.send(errorReply(iq, new StanzaError("bad-request", (err as JidError).message)));
      return;
    }
    this.jid = parseJid(`${this.username}@${this.deps.domain}`).withResource(resource);
    // RFC 6120 §7.7.2.2: the newest login wins; the old session ends with <conflict/>.
    const replaced = this.deps.sessions.add(this);
    if (replaced) {
      this.log.info({ jid: this.jid.full }, "resource taken over by a new login");
      replaced.close("conflict", "replaced by a new login with the same resource");
    }
    this.bound = true;
    this.phase = "ready";
    if (this.authTimer) clearTimeout(this.authTimer);
    if (this.deps.settings.keepaliveMs > 0) this.conn.setKeepalive(this.deps.settings.keepaliveMs);
    this.conn.send(iqResult(iq, new Element("bind", { xmlns: NS.bind }).c("jid").t(this.jid.full).root()));
    this.deps.events.sessionBound(this);
  }

  /** XEP-0198: <enable/>, <r/>, <a/> and <resume/>. */
  private onStreamManagement(el: Element): void {
    switch (el.name) {
      case "enable":
        this.enableSm(el);
        return;
      case "resume":
        this.resume(el);
        return;
      case "r":
      case "a":
        this.sm?.onAckElement(el); // XEP-0198 §5
        return;
      default:
        throw new StreamError("unsupported-stanza-type", `<${el.name}/> is not part of XEP-0198`);
    }
  }

  /** XEP-0198 §4: enable after binding, at most once per session. */
  private enableSm(el: Element): void {
    if (this.phase !== "ready" || this.sm) {
      this.conn.send(smFailed("unexpected-request"));
      return;
    }
    const { sm, enabled } = enableStreamManagement(el, this.deps.settings.resumeTimeoutMs, () => this.conn);
    this.sm = sm;
    if (sm.resumable) this.deps.resumable.set(sm.id, this);
    this.conn.send(enabled);
    this.log.debug({ resumable: sm.resumable }, "stream management enabled");
  }

  /** XEP-0198 §6: a new stream (authenticated, not bound) takes over a dropped session. */
  private resume(el: Element): void {
    if (this.phase !== "bind") {
      this.conn.send(smFailed("unexpected-request"));
      return;
    }
    const previous = this.deps.resumable.get(el.attrs.previd ?? "");
    const h = parseH(el.attrs.h);
    if (!previous || previous.jid.bare !== `${this.username}@${this.deps.domain}` || h === undefined) {
      this.conn.send(smFailed("item-not-found"));
      return;
    }
    if (this.authTimer) clearTimeout(this.authTimer);
    this.absorbed = true;
    previous.takeOver(this.conn, h);
    this.lifecycle.closed?.();
  }

  /** Moves this session onto `conn`, acknowledges up to `h` and resends what is still unacknowledged. */
  private takeOver(conn: XmlConnection, h: number): void {
    const sm = this.sm!;
    if (!sm.ack(h)) {
      conn.streamError("undefined-condition", handledCountTooHigh(h, sm.sentCount));
      return;
    }
    if (!sm.hibernating) {
      // The client came back before we noticed the old connection die: drop it quietly.
      const old = this.conn;
      old.rebind(undefined);
      old.close();
      this.deps.metrics.connections.dec({ kind: "c2s", state: "connected" });
      this.deps.metrics.connections.dec({ kind: "c2s", state: "authenticated" });
    }
    sm.wake();
    this.conn = conn;
    conn.rebind(this.handler());
    if (this.deps.settings.keepaliveMs > 0) conn.setKeepalive(this.deps.settings.keepaliveMs);
    sm.resend();
    this.log.info({ jid: this.jid.full, resent: sm.unackedCount }, "session resumed");
  }

  /**
   * A quiet client is not a dead one (devices sleep): after the idle timeout we ping it
   * (XEP-0199 §4.1, server-to-client) and close only if nothing at all arrives by the next one.
   */
  private onIdle(): void {
    if (this.phase !== "ready") {
      this.conn.streamError("connection-timeout", "no traffic for too long");
      return;
    }
    if (this.idlePingSentAt !== undefined && this.conn.lastReceivedAt < this.idlePingSentAt) {
      this.conn.streamError("connection-timeout", "no answer to a ping");
      return;
    }
    this.idlePingSentAt = Date.now();
    this.send(idlePing(this.deps.domain, this.jid, this.idlePingSentAt));
  }

  private async onStanza(el: Element): Promise<void> {
    // RFC 6120 §8.1.2.1: the server stamps the full JID; a client may only name itself.
    const from = el.attrs.from;
    if (
      from !== undefined &&
      from !== this.jid.full &&
      from !== this.jid.bare &&
      !namesSelf(from, this.jid)
    ) {
      throw new StreamError("invalid-from", "a client may only send as itself"); // RFC 6120 §4.9.3.9
    }
    el.attrs.from = this.jid.full;
    if (el.name === "iq") {
      const type = el.attrs.type;
      // The answer to our idle ping needs no routing.
      if ((type === "result" || type === "error") && isIdlePingAnswer(el)) return;
      const problem = iqProblem(el);
      if (problem) {
        this.send(errorReply(el, new StanzaError("bad-request", problem)));
        return;
      }
      // RFC 3921 §3: the legacy session request just succeeds.
      const payload = el.getChildElements()[0];
      if (!el.attrs.to && type === "set" && payload?.is("session", NS.session)) {
        this.send(iqResult(el));
        return;
      }
    }
    if (el.name === "presence" && !el.attrs.to) this.updateAvailability(el);
    await this.deps.router.route(el, { kind: "c2s", session: this });
    if (this.initialPresence) {
      this.initialPresence = false;
      this.deps.events.sessionAvailable(this);
    }
  }

  /** RFC 6121 §4.2, §4.5, §4.7.2.3: availability and priority decide where bare-JID messages go. */
  private updateAvailability(presence: Element): void {
    const type = presence.attrs.type;
    if (type === undefined) {
      this.priority = presencePriority(presence);
      const initial = !this.available;
      this.available = true;
      this.presence = presence;
      if (initial) this.initialPresence = true;
    } else if (type === "unavailable") {
      this.available = false;
      this.presence = undefined;
    }
  }

  private onClosed(reason: string): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.deps.metrics.connections.dec({ kind: "c2s", state: "connected" });
    if (this.authenticated) this.deps.metrics.connections.dec({ kind: "c2s", state: "authenticated" });
    this.log.debug({ reason }, "connection closed");
    if (this.absorbed) return; // the connection lives on in the session it resumed
    // XEP-0198 §6: a connection lost without a closing handshake may be resumed.
    if (this.bound && this.sm?.resumable && reason === "transport lost") {
      this.sm.hibernate(this.deps.settings.resumeTimeoutMs, () => this.finish("not resumed in time"));
      this.log.info(
        { jid: this.jid.full, unacked: this.sm.unackedCount },
        "connection lost: waiting for resumption",
      );
      return;
    }
    this.finish(reason);
  }

  /**
   * The session is over. Stanzas the client never acknowledged are not lost (XEP-0198 §4, "no
   * silent loss"): messages are routed again (to another resource or to offline storage) and
   * requests bounce to their senders.
   */
  private finish(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.sm) {
      this.sm.end();
      this.deps.resumable.delete(this.sm.id);
    }
    const handOver: Promise<void>[] = [];
    if (this.bound) {
      this.deps.sessions.remove(this);
      this.deps.events.sessionEnded(this, reason);
      this.available = false;
      this.presence = undefined;
      // XEP-0198 §4: no silent loss of what the client never acknowledged.
      for (const { stanza } of this.sm?.takeUnacked() ?? []) {
        handOver.push(handOnUndelivered(stanza, this.deps.router));
      }
    }
    this.lifecycle.closed?.();
    void Promise.allSettled(handOver).then(() => this.resolveEnded());
  }
}
