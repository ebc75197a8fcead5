/**
 * A client-to-server stream: header, STARTTLS, SASL, resource binding, then stanzas to the router.
 * References: RFC 6120 §4 (streams), §5 (STARTTLS), §6 (SASL), §7 (resource binding), §8.1.2.1
 * (from stamping), §8.2.3 (iq rules), RFC 3921 §3 (legacy session, for old clients), RFC 6121 §4
 * (availability used for routing), XEP-0440 (SASL channel-binding type capability).
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { Element } from "ltx";
import { type Jid, type JidError, normalizeResourcepart, parseJid, tryParseJid } from "../jid.ts";
import type { LocalSession } from "../modules/module.ts";
import { channelBindingData, type TlsServerSettings } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Router } from "../routing/router.ts";
import type { SessionDirectory } from "../routing/sessions.ts";
import type { SaslContext, SaslServerMechanism } from "../sasl/mechanism.ts";
import { channelBindingTypes, checkAuthzid, findMechanism, selectMechanisms } from "../sasl/mechanisms.ts";
import { SaslFailure, StanzaError, StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { errorReply, iqResult, stanzaKind } from "../xml/stanza.ts";
import type { XmlConnection } from "./xml-connection.ts";

export interface C2sSettings {
  readonly requireTls: boolean;
  readonly authTimeoutMs: number;
  /** Quiet this long → the server pings; quiet this long again → connection-timeout. */
  readonly idleTimeoutMs: number;
  /** Whitespace keepalive period from the server (for NATs); 0 = off. */
  readonly keepaliveMs: number;
  readonly maxAuthFailures: number;
}

export interface C2sDeps {
  readonly domain: string;
  readonly settings: C2sSettings;
  readonly router: Router;
  readonly sessions: SessionDirectory;
  readonly credentials: SaslContext["credentials"];
  /** Certificate and context for STARTTLS. */
  readonly tls: TlsServerSettings;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Lifecycle notifications for modules (presence, stream management). */
  readonly events: C2sEvents;
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
  closed?(): void;
}

type Phase = "header" | "tls" | "auth" | "bind" | "ready";

const STREAM_NS_CLIENT = NS.client;
const IDLE_PING_PREFIX = "hanse-idle-";

export class C2sStream implements LocalSession {
  readonly id: string;
  jid!: Jid;
  priority = 0;
  available = false;
  presence: Element | undefined;
  private readonly conn: XmlConnection;
  private readonly deps: C2sDeps;
  private readonly log: Logger;
  private phase: Phase = "header";
  private username: string | undefined;
  private mechanism: SaslServerMechanism | undefined;
  private mechanismName = "";
  private authFailures = 0;
  private authTimer: NodeJS.Timeout | undefined;
  private bound = false;
  private idlePingSentAt: number | undefined;
  /** Set by an initial available presence until the event for it is emitted. */
  private initialPresence = false;
  private readonly lifecycle: StreamLifecycle;

  constructor(conn: XmlConnection, deps: C2sDeps, lifecycle: StreamLifecycle = {}) {
    this.conn = conn;
    this.lifecycle = lifecycle;
    this.deps = deps;
    this.id = conn.id;
    this.log = deps.log.child({ conn: conn.id, remote: conn.remoteAddress });
    deps.metrics.connections.inc({ kind: "c2s", state: "connected" });
    // Unauthenticated connections get a short deadline (slow-loris and flood protection).
    this.authTimer = setTimeout(
      () => conn.streamError("connection-timeout", "authentication took too long"),
      deps.settings.authTimeoutMs,
    );
    this.authTimer.unref();
    conn.setIdleTimeout(deps.settings.idleTimeoutMs);
    conn.start({
      onHeader: (attrs) => this.onHeader(attrs),
      onElement: (el) => this.onElement(el),
      onClosed: (reason) => this.onClosed(reason),
      onIdle: () => this.onIdle(),
    });
  }

  get authenticated(): boolean {
    return this.username !== undefined;
  }

  // LocalSession
  send(stanza: Element): boolean {
    return this.conn.send(stanza);
  }

  close(condition?: string, text?: string): void {
    if (condition) this.conn.streamError(condition as StreamError["condition"], text);
    else this.conn.close();
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
      const mechanisms = features.c("mechanisms", { xmlns: NS.sasl });
      for (const name of selectMechanisms(this.saslContext())) mechanisms.c("mechanism").t(name);
      const bindings = channelBindingTypes(this.saslContext());
      if (bindings.length > 0) {
        // XEP-0440 §3: tell clients which channel bindings our -PLUS mechanisms accept.
        const cb = features.c("sasl-channel-binding", { xmlns: NS.saslChannelBinding });
        for (const type of bindings) cb.c("channel-binding", { type });
      }
      if (this.conn.secure || !requireTls) this.phase = "auth";
      return features;
    }
    features.c("bind", { xmlns: NS.bind });
    // RFC 6121 Appendix E / RFC 3921 §3: old clients still send <session/>; it is a no-op.
    features.c("session", { xmlns: NS.session }).c("optional");
    this.phase = "bind";
    return features;
  }

  private async onElement(el: Element): Promise<void> {
    const ns = el.attrs.xmlns;
    if (this.phase === "header") throw new StreamError("not-authorized", "stream header expected");
    if (ns === NS.tls) return this.onStartTls(el);
    if (ns === NS.sasl) return this.onSasl(el);
    if (this.phase !== "bind" && this.phase !== "ready") {
      // RFC 6120 §4.3.3: no stanzas before the mandatory features (TLS, SASL) are negotiated.
      throw new StreamError("not-authorized", "authenticate first");
    }
    const kind = stanzaKind(el);
    if (!kind || (ns !== undefined && ns !== STREAM_NS_CLIENT)) {
      throw new StreamError("unsupported-stanza-type", `<${el.name}/> is not a stanza`); // RFC 6120 §4.9.3.24
    }
    if (this.phase === "bind") return this.onBindPhase(el);
    return this.onStanza(el);
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

  private saslContext(): SaslContext {
    return {
      secure: this.conn.secure,
      channelBinding: (type) =>
        this.conn.secure ? channelBindingData(this.conn.socket as TLSSocket, type) : undefined,
      credentials: this.deps.credentials,
    };
  }

  private async onSasl(el: Element): Promise<void> {
    if (this.authenticated || (this.phase !== "auth" && this.phase !== "tls")) {
      throw new StreamError("policy-violation", "SASL is not expected now");
    }
    try {
      if (el.name === "auth") {
        if (!this.conn.secure && this.deps.settings.requireTls) {
          throw new SaslFailure("encryption-required"); // RFC 6120 §6.5.6
        }
        const name = el.attrs.mechanism ?? "";
        const ctx = this.saslContext();
        const factory = findMechanism(name, ctx);
        if (!factory) {
          throw new SaslFailure("invalid-mechanism", `mechanism ${name || "(none)"} is not offered`);
        }
        this.mechanism = factory.create(ctx);
        this.mechanismName = name;
        const text = el.text();
        // RFC 6120 §6.4.2: no initial response → an empty challenge asks for it.
        if (text === "") {
          this.conn.send(new Element("challenge", { xmlns: NS.sasl }));
          return;
        }
        return await this.saslStep(decodeBase64(text));
      }
      if (el.name === "response") {
        if (!this.mechanism) throw new SaslFailure("malformed-request", "no authentication in progress");
        return await this.saslStep(decodeBase64(el.text()));
      }
      if (el.name === "abort") throw new SaslFailure("aborted"); // RFC 6120 §6.4.4
      throw new StreamError("policy-violation", `unexpected SASL element <${el.name}/>`);
    } catch (err) {
      if (!(err instanceof SaslFailure)) throw err;
      this.saslFailed(err);
    }
  }

  private async saslStep(input: Buffer): Promise<void> {
    const step = await this.mechanism!.step(input);
    if (step.kind === "challenge") {
      this.conn.send(new Element("challenge", { xmlns: NS.sasl }).t(step.data.toString("base64")));
      return;
    }
    checkAuthzid(step, this.deps.domain);
    this.username = step.username;
    this.mechanism = undefined;
    const success = new Element("success", { xmlns: NS.sasl });
    if (step.data) success.t(step.data.toString("base64")); // RFC 6120 §6.3.10
    this.conn.send(success);
    this.conn.resetStream();
    this.phase = "header";
    this.deps.metrics.connections.inc({ kind: "c2s", state: "authenticated" });
    this.lifecycle.authenticated?.();
    this.log.info({ user: step.username, mechanism: this.mechanismName }, "authenticated");
  }

  private saslFailed(err: SaslFailure): void {
    this.mechanism = undefined;
    this.authFailures++;
    this.deps.metrics.authFailures.inc({ mechanism: this.mechanismName || "none", reason: err.condition });
    this.log.info({ mechanism: this.mechanismName, reason: err.condition }, "authentication failed");
    const failure = new Element("failure", { xmlns: NS.sasl });
    failure.c(err.condition);
    if (err.text) failure.c("text", { "xml:lang": "en" }).t(err.text);
    this.conn.send(failure);
    // RFC 6120 §6.4.5: a configurable number of retries, then policy-violation.
    if (this.authFailures >= this.deps.settings.maxAuthFailures) {
      this.conn.streamError("policy-violation", "too many failed authentication attempts");
    }
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
    this.conn.send(ping);
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
      // The answer to our idle ping needs no routing.
      if (
        (el.attrs.type === "result" || el.attrs.type === "error") &&
        el.attrs.id?.startsWith(IDLE_PING_PREFIX)
      ) {
        return;
      }
      const problem = iqProblem(el);
      if (problem) {
        this.conn.send(errorReply(el, new StanzaError("bad-request", problem)));
        return;
      }
      // RFC 3921 §3: the legacy session request just succeeds.
      const payload = el.getChildElements()[0];
      if (!el.attrs.to && el.attrs.type === "set" && payload?.is("session", NS.session)) {
        this.conn.send(iqResult(el));
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
    if (this.bound) {
      this.deps.sessions.remove(this);
      this.deps.events.sessionEnded(this, reason);
      this.available = false;
      this.presence = undefined;
    }
    this.log.debug({ reason }, "connection closed");
    this.lifecycle.closed?.();
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

/** RFC 4648 §4 base64; "=" alone is the empty response (RFC 6120 §6.4.2). */
function decodeBase64(text: string): Buffer {
  const trimmed = text.trim();
  if (trimmed === "=") return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) {
    throw new SaslFailure("incorrect-encoding"); // RFC 6120 §6.5.4
  }
  return Buffer.from(trimmed, "base64");
}
