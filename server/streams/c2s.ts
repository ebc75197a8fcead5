/**
 * A client-to-server stream and the session it binds: header, STARTTLS, SASL, resource binding,
 * stanzas to the router, and XEP-0198 stream management (acks, resumption, and what happens to
 * unacknowledged stanzas when a session ends: no silent loss).
 * References: RFC 6120 §4 (streams), §5 (STARTTLS), §7 (resource binding), §8.1.2.1 (from
 * stamping), §8.2.3 (iq rules), RFC 3921 §3 (legacy session), RFC 6121 §4 (availability),
 * XEP-0198 §3–§6, XEP-0199 §4.1 (server-to-client ping).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Element } from "ltx";
import { type Jid, type JidError, normalizeResourcepart, parseJid, tryParseJid } from "../jid.ts";
import type { LocalSession, PreAuthStream } from "../modules/module.ts";
import type { TlsServerSettings } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Router } from "../routing/router.ts";
import type { SessionDirectory } from "../routing/sessions.ts";
import type { SaslContext, SaslMechanismFactory } from "../sasl/mechanism.ts";
import { StanzaError, StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { errorReply, iqResult, stanzaKind } from "../xml/stanza.ts";
import { SaslNegotiator } from "./c2s-sasl.ts";
import { NS_SM, parseH, SmState } from "./stream-management.ts";
import type { StreamHandler, XmlConnection } from "./xml-connection.ts";

export interface C2sSettings {
  readonly requireTls: boolean;
  readonly authTimeoutMs: number;
  /** Quiet this long → the server pings; quiet this long again → connection-timeout. */
  readonly idleTimeoutMs: number;
  /** Whitespace keepalive period from the server (for NATs); 0 = off. */
  readonly keepaliveMs: number;
  readonly maxAuthFailures: number;
  /** XEP-0198: how long a dropped session waits to be resumed; 0 disables resumption. */
  readonly resumeTimeoutMs: number;
  /** XEP-0198: unacknowledged stanzas a session may hold before it is closed. */
  readonly maxUnacked: number;
}

export interface C2sDeps {
  readonly domain: string;
  readonly settings: C2sSettings;
  readonly router: Router;
  readonly sessions: SessionDirectory;
  readonly credentials: SaslContext["credentials"];
  /** SASL mechanisms (default: a per-process fake-credential secret; the broker passes a persistent one). */
  readonly mechanisms?: readonly SaslMechanismFactory[];
  /** Certificate and context for STARTTLS. */
  readonly tls: TlsServerSettings;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Lifecycle notifications for modules (presence, offline delivery). */
  readonly events: C2sEvents;
  /** XEP-0198 resumable sessions by stream-management id (shared by all client streams). */
  readonly resumable: Map<string, C2sStream>;
  /** Features modules offer after authentication (roster versioning, pre-approval, …). */
  readonly streamFeatures: readonly Element[];
  /** Iqs allowed before authentication (after TLS where required), e.g. XEP-0077, and their features. */
  readonly preAuth?: {
    readonly features: readonly Element[];
    /** The reply, or undefined (synchronously) when no module answers this iq before authentication. */
    handle(iq: Element, stream: PreAuthStream): Promise<Element> | undefined;
  };
}

export interface C2sEvents {
  sessionBound(session: LocalSession): void;
  /** The session sent its initial available presence (RFC 6121 §4.2): offline delivery may start. */
  sessionAvailable(session: LocalSession): void;
  /** The session is gone; `available` and `presence` still show its last state. */
  sessionEnded(session: LocalSession, reason: string): void;
}

/** Callbacks for the listener that owns this stream (connection limits, shutdown). */
export interface StreamLifecycle {
  authenticated?(): void;
  /** The session (or the unauthenticated stream) is over for good. */
  closed?(): void;
}

type Phase = "header" | "tls" | "auth" | "bind" | "ready";

const IDLE_PING_PREFIX = "hanse-idle-";

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
  private sm: SmState | undefined;
  private ackRequested = false;
  private hibernateTimer: NodeJS.Timeout | undefined;
  /** The transport is gone and the session waits to be resumed (XEP-0198 §6). */
  private hibernating = false;
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
    if (this.sm) {
      this.sm.sent(stanza);
      if (this.sm.unackedCount > this.deps.settings.maxUnacked) {
        this.log.warn({ unacked: this.sm.unackedCount }, "client does not acknowledge stanzas: closing");
        this.close("resource-constraint", "too many unacknowledged stanzas");
        return true; // counted and queued: it goes to offline storage with the rest
      }
      if (this.hibernating) return true;
      this.requestAck();
    }
    return this.conn.send(stanza);
  }

  close(condition?: string, text?: string): void {
    if (this.hibernating) this.finish(condition ?? "closed");
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
    const features = new Element("stream:features");
    const { requireTls } = this.deps.settings;
    if (!this.conn.secure) {
      const starttls = features.c("starttls", { xmlns: NS.tls });
      if (requireTls) starttls.c("required"); // RFC 6120 §5.3.1
      this.phase = "tls";
      if (requireTls) return features;
    }
    if (!this.authenticated) {
      this.sasl.addFeatures(features);
      if (this.conn.secure || !requireTls) {
        this.phase = "auth";
        for (const feature of this.deps.preAuth?.features ?? []) features.cnode(feature);
      }
      return features;
    }
    features.c("bind", { xmlns: NS.bind });
    // RFC 6121 Appendix E / RFC 3921 §3: old clients still send <session/>; it is a no-op.
    features.c("session", { xmlns: NS.session }).c("optional");
    features.c("sm", { xmlns: NS_SM }); // XEP-0198 §3
    for (const feature of this.deps.streamFeatures) features.cnode(feature);
    this.phase = "bind";
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
      resource = requested ? normalizeResourcepart(requested) : `hanse-${randomUUID().slice(0, 8)}`;
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
        // XEP-0198 §5: answer with the count of stanzas handled so far.
        if (this.sm) this.conn.send(new Element("a", { xmlns: NS_SM, h: String(this.sm.inbound) }));
        return;
      case "a": {
        if (!this.sm) return;
        this.ackRequested = false;
        const h = parseH(el.attrs.h);
        if (h === undefined || !this.sm.ack(h)) {
          // XEP-0198 §4: acknowledging more than was sent ends the stream.
          throw new StreamError(
            "undefined-condition",
            `handled-count-too-high: h=${el.attrs.h}, sent ${this.sm.sentCount}`,
          );
        }
        if (this.sm.unackedCount > 0) this.requestAck();
        return;
      }
      default:
        throw new StreamError("unsupported-stanza-type", `<${el.name}/> is not part of XEP-0198`);
    }
  }

  private smFailed(condition: string, h?: number): void {
    const failed = new Element("failed", { xmlns: NS_SM, ...(h === undefined ? {} : { h: String(h) }) });
    failed.c(condition, { xmlns: NS.stanzaErrors });
    this.conn.send(failed);
  }

  /** XEP-0198 §4: enable after binding, at most once per session. */
  private enableSm(el: Element): void {
    if (this.phase !== "ready" || this.sm) {
      this.smFailed("unexpected-request");
      return;
    }
    const wantsResume = el.attrs.resume === "true" || el.attrs.resume === "1";
    const { resumeTimeoutMs } = this.deps.settings;
    const resumable = wantsResume && resumeTimeoutMs > 0;
    const id = randomBytes(18).toString("base64url");
    this.sm = new SmState(id, resumable);
    const attrs: Record<string, string> = { xmlns: NS_SM };
    if (resumable) {
      this.deps.resumable.set(id, this);
      const requested = parseH(el.attrs.max);
      const max = Math.min(
        requested && requested > 0 ? requested : Number.POSITIVE_INFINITY,
        resumeTimeoutMs / 1000,
      );
      attrs.id = id;
      attrs.resume = "true";
      attrs.max = String(Math.floor(max));
    }
    this.conn.send(new Element("enabled", attrs));
    this.log.debug({ resumable }, "stream management enabled");
  }

  /** XEP-0198 §6: a new stream (authenticated, not bound) takes over a dropped session. */
  private resume(el: Element): void {
    if (this.phase !== "bind") {
      this.smFailed("unexpected-request");
      return;
    }
    const previous = this.deps.resumable.get(el.attrs.previd ?? "");
    const h = parseH(el.attrs.h);
    if (!previous || previous.jid.bare !== `${this.username}@${this.deps.domain}` || h === undefined) {
      this.smFailed("item-not-found");
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
      conn.streamError("undefined-condition", `handled-count-too-high: h=${h}, sent ${sm.sentCount}`);
      return;
    }
    if (this.hibernateTimer) clearTimeout(this.hibernateTimer);
    const old = this.conn;
    if (!this.hibernating) {
      // The client came back before we noticed the old connection die: drop it quietly.
      old.rebind(undefined);
      old.close();
      this.deps.metrics.connections.dec({ kind: "c2s", state: "connected" });
      this.deps.metrics.connections.dec({ kind: "c2s", state: "authenticated" });
    }
    this.hibernating = false;
    this.ackRequested = false;
    this.conn = conn;
    conn.rebind(this.handler());
    if (this.deps.settings.keepaliveMs > 0) conn.setKeepalive(this.deps.settings.keepaliveMs);
    conn.send(new Element("resumed", { xmlns: NS_SM, previd: sm.id, h: String(sm.inbound) }));
    for (const { stanza } of sm.pending()) conn.send(stanza);
    if (sm.unackedCount > 0) this.requestAck();
    this.log.info({ jid: this.jid.full, resent: sm.unackedCount }, "session resumed");
  }

  /** XEP-0198 §5: ask for an ack once per burst of outgoing stanzas. */
  private requestAck(): void {
    if (this.ackRequested || this.hibernating) return;
    this.ackRequested = true;
    setImmediate(() => {
      if (!this.hibernating && !this.finished) this.conn.send(new Element("r", { xmlns: NS_SM }));
    });
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
    const ping = new Element("iq", {
      type: "get",
      id: `${IDLE_PING_PREFIX}${this.idlePingSentAt}`,
      from: this.deps.domain,
      to: this.jid.full,
    });
    ping.c("ping", { xmlns: NS.ping });
    this.send(ping);
  }

  private async onStanza(el: Element): Promise<void> {
    // RFC 6120 §8.1.2.1: the server stamps the full JID; a client may only name itself.
    const from = el.attrs.from;
    if (from !== undefined && from !== this.jid.full && from !== this.jid.bare) {
      const parsed = tryParseJid(from);
      if (!parsed || (parsed.full !== this.jid.full && parsed.full !== this.jid.bare)) {
        throw new StreamError("invalid-from", "a client may only send as itself"); // RFC 6120 §4.9.3.9
      }
    }
    el.attrs.from = this.jid.full;
    if (el.name === "iq") {
      const type = el.attrs.type;
      // The answer to our idle ping needs no routing.
      if ((type === "result" || type === "error") && el.attrs.id?.startsWith(IDLE_PING_PREFIX)) return;
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
      const priority = Number.parseInt(presence.getChildText("priority") ?? "0", 10);
      this.priority = Number.isFinite(priority) ? Math.max(-128, Math.min(127, priority)) : 0;
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
      this.hibernating = true;
      this.hibernateTimer = setTimeout(
        () => this.finish("not resumed in time"),
        this.deps.settings.resumeTimeoutMs,
      );
      this.hibernateTimer.unref();
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
    if (this.hibernateTimer) clearTimeout(this.hibernateTimer);
    if (this.sm) this.deps.resumable.delete(this.sm.id);
    const handOver: Promise<void>[] = [];
    if (this.bound) {
      this.deps.sessions.remove(this);
      this.deps.events.sessionEnded(this, reason);
      this.available = false;
      this.presence = undefined;
      for (const { stanza } of this.sm?.takeUnacked() ?? []) handOver.push(this.handUndelivered(stanza));
    }
    this.lifecycle.closed?.();
    void Promise.allSettled(handOver).then(() => this.resolveEnded());
  }

  private async handUndelivered(stanza: Element): Promise<void> {
    const type = stanza.attrs.type;
    if (stanza.name === "message" && type !== "error") {
      await this.deps.router.route(stanza);
    } else if (stanza.name === "iq" && (type === "get" || type === "set")) {
      this.deps.router.bounce(stanza, new StanzaError("service-unavailable", "the recipient went away"));
    }
  }
}

/** RFC 6120 §8.2.3: id required; type one of four; get/set carry exactly one child. */
function iqProblem(iq: Element): string | undefined {
  const type = iq.attrs.type;
  if (!iq.attrs.id) return "an iq needs an id";
  if (type !== "get" && type !== "set" && type !== "result" && type !== "error") return "bad iq type";
  if ((type === "get" || type === "set") && iq.getChildElements().length !== 1) {
    return "an iq get or set carries exactly one child element";
  }
  return undefined;
}
