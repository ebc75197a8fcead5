/**
 * One incoming server-to-server stream: header, STARTTLS, then the peer authenticates one or more
 * domain pairs (SASL EXTERNAL with a certificate, or dialback). Every stanza is checked against the
 * pairs authenticated on this stream before it reaches the router. We also answer dialback
 * verification requests here (as the Authoritative Server for our domains).
 * References: RFC 6120 §4.7 (response header, new stream id on every restart), §4.9.3.6
 * (host-unknown), §4.9.3.7 (improper-addressing), §4.9.3.9 (invalid-from), §4.9.3.12
 * (not-authorized), §5.3.1/RFC 7590 §3 (mandatory TLS), §8.1.1.2/§8.1.2.2 (to and from required
 * between servers), XEP-0178 §3 (SASL EXTERNAL for servers), XEP-0220 §2.2.1 (Receiving Server),
 * §2.2.2 (Authoritative Server), §2.4 (feature), §2.5 (dialback errors), §4 (multiplexing).
 */
import { randomBytes } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { Element } from "ltx";
import { tryParseJid } from "../jid.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { XmlConnection } from "../streams/xml-connection.ts";
import { StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { stanzaKind } from "../xml/stanza.ts";
import { checkPeer, type PeerCertificate, peerCertificate } from "./certificates.ts";
import {
  type DialbackSecret,
  dialbackElement,
  dialbackFeature,
  keyMatches,
  NS_DIALBACK,
} from "./dialback.ts";
import type { LinkStateTracker, S2sMetrics } from "./link-metrics.ts";
import type { Upgrade } from "./starttls.ts";
import type { VerifyOutcome } from "./verify-requests.ts";

export interface InStreamSettings {
  readonly requireEncryption: boolean;
  readonly secureAuth: boolean;
  readonly authTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export interface InStreamDeps {
  readonly settings: InStreamSettings;
  /** The domain answered for when the peer's header names none. */
  readonly defaultDomain: string;
  /** Domains (and in-process components) this broker serves. */
  readonly serves: (domain: string) => boolean;
  /** The allow/deny policy for a remote domain. */
  readonly allowed: (domain: string) => boolean;
  /** Server side of STARTTLS (asks for the peer's certificate and checks its chain). */
  readonly startTls: Upgrade;
  readonly secret: DialbackSecret;
  /** XEP-0220 §2.1.2: ask `remote`'s Authoritative Server about `key` (via our outgoing link). */
  readonly verify: (local: string, remote: string, streamId: string, key: string) => Promise<VerifyOutcome>;
  /** Routes an accepted stanza (router.route with origin s2s). */
  readonly route: (stanza: Element) => Promise<void>;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly s2sMetrics: S2sMetrics;
}

export class InStream {
  private readonly conn: XmlConnection;
  private readonly deps: InStreamDeps;
  private readonly log: Logger;
  private readonly gauge: LinkStateTracker;
  /** Authenticated domain pairs: remote domain → our domains it may address. */
  private readonly authed = new Map<string, Set<string>>();
  private streamId = "";
  private headerFrom: string | undefined;
  private headerTo: string | undefined;
  private peer: PeerCertificate | undefined;
  private externalOffered = false;
  private authTimer: NodeJS.Timeout | undefined;
  private closedResolve!: () => void;
  /** Resolves when the connection is gone. */
  readonly closed: Promise<void>;

  constructor(conn: XmlConnection, deps: InStreamDeps) {
    this.conn = conn;
    this.deps = deps;
    this.log = deps.log.child({ s2s: "in", conn: conn.id, remote: conn.remoteAddress });
    this.gauge = deps.s2sMetrics.tracker("in");
    this.gauge.set(undefined, "connected");
    this.closed = new Promise((resolve) => {
      this.closedResolve = resolve;
    });
    deps.metrics.connections.inc({ kind: "s2s-in", state: "connected" });
    if (conn.secure) this.peer = peerCertificate(conn.socket as TLSSocket); // XEP-0368 direct TLS
    this.authTimer = setTimeout(
      () => this.conn.streamError("connection-timeout", "no domain authenticated in time"),
      deps.settings.authTimeoutMs,
    );
    this.authTimer.unref();
    conn.setIdleTimeout(deps.settings.idleTimeoutMs);
    conn.start({
      onHeader: (attrs) => this.onHeader(attrs),
      onElement: (el) => this.onElement(el),
      onClosed: (reason) => this.onClosed(reason),
      // A quiet link is simply closed; the peer reconnects when it has something to send.
      onIdle: () => this.conn.close(),
    });
  }

  /** Ends the stream (broker shutdown: system-shutdown). */
  close(condition?: StreamError["condition"], text?: string): void {
    if (condition) this.conn.streamError(condition, text);
    else this.conn.close();
  }

  private onHeader(attrs: Record<string, string>): void {
    this.streamId = randomBytes(12).toString("base64url"); // RFC 6120 §4.7.3: new id per stream
    const to = attrs.to ? tryParseJid(attrs.to)?.domain : undefined;
    this.headerTo = to;
    this.headerFrom = attrs.from ? tryParseJid(attrs.from)?.domain : undefined;
    this.conn.sendHeader({
      from: to && this.deps.serves(to) ? to : this.deps.defaultDomain,
      ...(this.headerFrom ? { to: this.headerFrom } : {}),
      id: this.streamId,
    });
    if (attrs.to && (!to || !this.deps.serves(to))) {
      throw new StreamError("host-unknown", `this server does not serve ${attrs.to}`); // RFC 6120 §4.9.3.6
    }
    if (this.headerFrom && !this.deps.allowed(this.headerFrom)) {
      this.deps.s2sMetrics.failure(this.headerFrom, "policy");
      throw new StreamError("policy-violation", `federation with ${this.headerFrom} is not allowed here`);
    }
    if (!attrs.version || Number.parseFloat(attrs.version) < 1) {
      // RFC 6120 §4.7.5: a pre-1.0 peer gets no features, so it can never start TLS.
      if (this.deps.settings.requireEncryption) {
        throw new StreamError("unsupported-version", "XMPP 1.0 streams with TLS only");
      }
      return;
    }
    this.conn.send(this.features());
  }

  private features(): Element {
    const { requireEncryption, secureAuth } = this.deps.settings;
    const features = new Element("stream:features");
    if (!this.conn.secure) {
      const starttls = features.c("starttls", { xmlns: NS.tls });
      if (requireEncryption) {
        starttls.c("required"); // RFC 7590 §3, RFC 6120 §5.3.1
        return features;
      }
    }
    // XEP-0178 §3: EXTERNAL only when the certificate is valid for the domain in the header.
    this.externalOffered = false;
    if (this.headerFrom && !this.authed.has(this.headerFrom)) {
      const check = checkPeer(this.peer, this.headerFrom);
      if (check.ok) {
        this.externalOffered = true;
        features.c("mechanisms", { xmlns: NS.sasl }).c("mechanism").t("EXTERNAL");
      } else if (this.peer) {
        this.log.debug({ domain: this.headerFrom, reason: check.reason }, "no SASL EXTERNAL for this peer");
      }
    }
    if (!secureAuth) features.cnode(dialbackFeature()); // XEP-0220 §2.4.2
    return features;
  }

  private async onElement(el: Element): Promise<void> {
    const ns = el.attrs.xmlns;
    if (ns === NS.tls) return this.onStartTls(el);
    if (ns === NS.stream && el.name === "error") {
      const condition = el.getChildElements().find((c) => c.attrs.xmlns === NS.streamErrors)?.name;
      this.log.info(
        { condition, text: el.getChildText("text", NS.streamErrors) },
        "stream error from the peer",
      );
      return;
    }
    if (this.deps.settings.requireEncryption && !this.conn.secure) {
      throw new StreamError("policy-violation", "STARTTLS is required first"); // RFC 7590 §3
    }
    if (ns === NS.sasl) return this.onSasl(el);
    if (ns === NS_DIALBACK) return this.onDialback(el);
    return this.onStanza(el);
  }

  private async onStartTls(el: Element): Promise<void> {
    if (el.name !== "starttls" || this.conn.secure) {
      throw new StreamError("policy-violation", "STARTTLS is not expected now");
    }
    this.conn.send(new Element("proceed", { xmlns: NS.tls })); // RFC 6120 §5.4.2.3
    try {
      await this.conn.startTls(this.deps.startTls);
    } catch {
      return; // the connection is gone; XmlConnection logged why
    }
    this.peer = peerCertificate(this.conn.socket as TLSSocket);
  }

  /** XEP-0178 §3: the peer authenticates the domain of its header with its certificate. */
  private onSasl(el: Element): void {
    const failure = (condition: string, text: string) => {
      this.log.info({ condition, text }, "SASL EXTERNAL refused");
      this.deps.s2sMetrics.failure(this.headerFrom ?? "-", "sasl");
      const reply = new Element("failure", { xmlns: NS.sasl });
      reply.c(condition);
      reply.c("text").t(text);
      this.conn.send(reply);
    };
    if (el.name !== "auth") {
      if (el.name === "abort") failure("aborted", "aborted");
      return;
    }
    if (!this.externalOffered || !this.headerFrom || !this.headerTo) {
      failure("invalid-mechanism", "EXTERNAL was not offered on this stream");
      return;
    }
    if (el.attrs.mechanism !== "EXTERNAL") {
      failure("invalid-mechanism", "only EXTERNAL is offered");
      return;
    }
    // RFC 6120 §6.4.2: "=" is an empty initial response; an authzid must be the header's domain.
    const payload = el.text().trim();
    const authzid = payload === "" || payload === "=" ? "" : Buffer.from(payload, "base64").toString("utf8");
    if (authzid && tryParseJid(authzid)?.domain !== this.headerFrom) {
      failure("invalid-authzid", `the certificate was checked for ${this.headerFrom}, not ${authzid}`);
      return;
    }
    const check = checkPeer(this.peer, this.headerFrom);
    if (!check.ok) {
      failure("not-authorized", check.reason);
      return;
    }
    this.conn.send(new Element("success", { xmlns: NS.sasl }));
    this.authenticate(this.headerFrom, this.headerTo, `SASL EXTERNAL (${check.match})`);
    this.conn.resetStream(); // RFC 6120 §6.4.6
  }

  private onDialback(el: Element): Promise<void> | void {
    const { from, to, id, type } = el.attrs;
    if (type) {
      // XEP-0220 §2.2: answers never arrive on an incoming stream (§3: unsolicited, ignore).
      this.log.warn({ name: el.name, from, to, type }, "unsolicited dialback answer on an incoming stream");
      return;
    }
    if (!from || !to) throw new StreamError("improper-addressing", "dialback needs from and to");
    const remote = tryParseJid(from)?.domain;
    const local = tryParseJid(to)?.domain;
    if (!remote || !local) throw new StreamError("improper-addressing", "dialback from/to are not domains");
    const key = el.text();
    const answer = (
      outcome: "valid" | "invalid" | "error",
      condition?: string,
      withId = el.name === "verify",
    ): void => {
      this.conn.send(
        dialbackElement(
          el.name === "verify" ? "verify" : "result",
          { from: local, to: remote, ...(withId && id !== undefined ? { id } : {}), type: outcome },
          undefined,
          condition,
        ),
      );
    };
    if (el.name === "verify") {
      // XEP-0220 §2.2.2: we are the Authoritative Server for `local`; the key is stateless (XEP-0185).
      if (!this.deps.serves(local)) return answer("error", "item-not-found");
      const valid = keyMatches(this.deps.secret, remote, local, id ?? "", key);
      if (!valid) this.log.warn({ remote, local }, "asked to verify a dialback key we did not issue");
      return answer(valid ? "valid" : "invalid");
    }
    if (el.name !== "result") return;
    return this.onDialbackResult(remote, local, key, answer);
  }

  /** XEP-0220 §2.2.1: the peer claims `remote`; check with the Authoritative Server (or its certificate). */
  private async onDialbackResult(
    remote: string,
    local: string,
    key: string,
    answer: (outcome: "valid" | "invalid" | "error", condition?: string) => void,
  ): Promise<void> {
    if (!this.deps.serves(local)) return answer("error", "item-not-found"); // XEP-0220 §2.2.1
    if (!this.deps.allowed(remote)) {
      this.deps.s2sMetrics.failure(remote, "policy");
      this.log.info({ domain: remote }, "dialback from a domain the policy does not allow");
      return answer("error", "forbidden");
    }
    if (this.authed.get(remote)?.has(local)) return answer("valid");
    // XEP-0344 §2.4 (dialback with certificates): a certificate valid for the domain is proof enough.
    const check = checkPeer(this.peer, remote);
    if (check.ok) {
      this.authenticate(remote, local, `dialback with a valid certificate (${check.match})`);
      return answer("valid");
    }
    if (this.deps.settings.secureAuth) {
      this.deps.s2sMetrics.failure(remote, "certificate");
      this.log.warn({ domain: remote, reason: check.reason }, "dialback refused: s2s.secure_auth is on");
      return answer("error", "not-authorized"); // XEP-0220 §2.5
    }
    const streamId = this.streamId;
    const outcome = await this.deps.verify(local, remote, streamId, key);
    if (!this.conn.isOpen) return;
    if (outcome.type === "valid") {
      this.authenticate(remote, local, "dialback");
      return answer("valid");
    }
    if (outcome.type === "invalid") {
      this.deps.s2sMetrics.failure(remote, "dialback-invalid");
      this.log.warn({ domain: remote }, `dialback key refused by ${remote}'s authoritative server: closing`);
      answer("invalid");
      this.conn.close(); // XEP-0220 §2.2.1: MUST close the stream
      return;
    }
    this.deps.s2sMetrics.failure(remote, "dialback-error");
    this.log.warn({ domain: remote, condition: outcome.condition }, "could not verify a dialback key");
    answer("error", outcome.condition ?? "remote-server-not-found"); // XEP-0220 §2.5
  }

  private authenticate(remote: string, local: string, how: string): void {
    let locals = this.authed.get(remote);
    if (!locals) {
      locals = new Set();
      this.authed.set(remote, locals);
    }
    const first = this.authed.size === 1 && locals.size === 0;
    locals.add(local);
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = undefined;
    if (first) {
      this.deps.metrics.connections.inc({ kind: "s2s-in", state: "authenticated" });
      this.gauge.set(remote, "authenticated");
    }
    this.log.info({ domain: remote, local, how }, "s2s peer authenticated");
  }

  private async onStanza(el: Element): Promise<void> {
    const kind = stanzaKind(el);
    if (!kind || (el.attrs.xmlns !== undefined && el.attrs.xmlns !== NS.server)) {
      throw new StreamError("unsupported-stanza-type", `<${el.name}/> is not a stanza`); // RFC 6120 §4.9.3.24
    }
    if (this.authed.size === 0) throw new StreamError("not-authorized", "authenticate a domain first");
    // RFC 6120 §8.1.1.2, §8.1.2.2: between servers both addresses are required and well-formed.
    const from = tryParseJid(el.attrs.from ?? "");
    const to = tryParseJid(el.attrs.to ?? "");
    if (!from || !to) throw new StreamError("improper-addressing", "a stanza needs valid from and to");
    if (!this.deps.serves(to.domain)) {
      throw new StreamError("host-unknown", `this server does not serve ${to.domain}`); // RFC 6120 §4.9.3.6
    }
    if (!this.authed.get(from.domain)?.has(to.domain)) {
      // RFC 6120 §4.9.3.9: the sender's domain was not authenticated for this pair on this stream.
      this.deps.s2sMetrics.failure(from.domain, "policy");
      this.log.warn(
        { from: from.full, to: to.domain },
        "stanza from a domain not authenticated on this link",
      );
      throw new StreamError(
        "invalid-from",
        `${from.domain} is not authenticated to ${to.domain} on this stream`,
      );
    }
    el.attrs.from = from.full;
    el.attrs.to = to.full;
    this.deps.s2sMetrics.stanza(from.domain, "in");
    await this.deps.route(el);
  }

  private onClosed(reason: string): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.gauge.clear();
    this.deps.metrics.connections.dec({ kind: "s2s-in", state: "connected" });
    if (this.authed.size > 0) this.deps.metrics.connections.dec({ kind: "s2s-in", state: "authenticated" });
    this.log.debug({ reason, domains: [...this.authed.keys()] }, "incoming s2s stream closed");
    this.closedResolve();
  }
}
