/**
 * One outgoing server-to-server link for a domain pair (local → remote): connect, STARTTLS (or
 * direct TLS), authenticate with SASL EXTERNAL or dialback, then carry stanzas. Stanzas wait in a
 * bounded queue until the link is ready; when it cannot be set up they go back to their senders
 * with the error. The same stream carries our dialback verification requests to the remote domain
 * (we are then the Receiving Server asking its Authoritative Server). This file is the link's life
 * cycle; the negotiation steps (STARTTLS, SASL EXTERNAL, dialback) are in stream-out-auth.ts.
 * References: RFC 6120 §4.7 (initiating stream header), XEP-0220 §2.1.1 (a close during setup),
 * §2.1.2 (verification requests), §2.4.1 (dialback namespace on the header), §3 (unsolicited
 * answers are ignored), XEP-0368 §3 (direct TLS with ALPN xmpp-server), RFC 6120
 * §8.3.3.15/16 (remote-server-not-found, remote-server-timeout).
 */
import type net from "node:net";
import type tls from "node:tls";
import type { Element } from "ltx";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type ConnectionLimits, type StreamHandler, XmlConnection } from "../streams/xml-connection.ts";
import { StanzaError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { peerCertificate } from "./certificates.ts";
import { type ClientTls, clientTlsOptions, openTarget } from "./connect.ts";
import { DIALBACK_XMLNS, type DialbackSecret, dialbackErrorCondition, NS_DIALBACK } from "./dialback.ts";
import { notFound, type Problem, timedOut } from "./link-errors.ts";
import type { FailureKind, LinkStateTracker, S2sMetrics } from "./link-metrics.ts";
import type { Target } from "./resolve.ts";
import { OutLinkAuth } from "./stream-out-auth.ts";
import { type VerifyOutcome, VerifyRequests } from "./verify-requests.ts";

export interface OutLinkSettings {
  readonly requireEncryption: boolean;
  readonly secureAuth: boolean;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxQueue: number;
  readonly limits: ConnectionLimits;
}

export interface OutLinkDeps {
  readonly local: string;
  readonly remote: string;
  readonly resolve: (domain: string) => Promise<Target[]>;
  readonly settings: OutLinkSettings;
  readonly tls: ClientTls;
  readonly secret: DialbackSecret;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly s2sMetrics: S2sMetrics;
  /** A reconnection attempt made by the pool on its own (its failures are logged quietly). */
  readonly background?: boolean;
  /** Returns a stanza that cannot be delivered to its sender. */
  readonly bounce: (stanza: Element, error: StanzaError) => void;
  readonly events: {
    ready(link: OutLink): void;
    /** The link is over. `error` is set when it never became ready (the cause, for back-off). */
    ended(
      link: OutLink,
      info: { readonly wasReady: boolean; readonly error?: StanzaError; readonly kind?: FailureKind },
    ): void;
  };
}

type State = "connecting" | "negotiating" | "ready" | "closed";

export class OutLink {
  readonly local: string;
  readonly remote: string;
  /** How we authenticated to the peer once ready: "SASL EXTERNAL" or "dialback". */
  authenticatedWith: string | undefined;
  private readonly deps: OutLinkDeps;
  private readonly log: Logger;
  private readonly gauge: LinkStateTracker;
  private state: State = "connecting";
  private conn: XmlConnection | undefined;
  private pendingSocket: net.Socket | undefined;
  /** Dialback elements may go out now: the stream is open past TLS and not inside SASL. */
  private dialbackOpen = false;
  private readonly queue: Element[] = [];
  private readonly verifies: VerifyRequests;
  /** The latest thing that went wrong (a stream error, a TLS failure), for the close that follows. */
  private problem: Problem | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();

  constructor(deps: OutLinkDeps) {
    this.deps = deps;
    this.local = deps.local;
    this.remote = deps.remote;
    this.log = deps.log.child({ s2s: "out", local: deps.local, remote: deps.remote });
    this.gauge = deps.s2sMetrics.tracker("out");
    this.gauge.set(this.remote, "connecting");
    this.verifies = new VerifyRequests(deps.local, deps.remote, deps.settings.connectTimeoutMs);
  }

  get isReady(): boolean {
    return this.state === "ready";
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  /** Resolves, connects and negotiates; the outcome arrives through events. */
  start(): void {
    const { connectTimeoutMs } = this.deps.settings;
    this.connectTimer = setTimeout(() => {
      const stage = this.conn ? "set up" : "reached";
      this.fail("timeout", timedOut(`${this.remote} could not be ${stage} within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    this.connectTimer.unref();
    void this.connect().catch((err) => {
      this.log.error({ err }, "s2s connect failed unexpectedly");
      this.fail("unreachable", notFound((err as Error).message));
    });
  }

  /** Sends now when ready, queues while the link is set up. False: the link is gone, make another. */
  send(stanza: Element): boolean {
    if (this.state === "closed") return false;
    if (this.state === "ready") {
      if (!this.conn?.send(stanza)) return false;
      this.deps.s2sMetrics.stanza(this.remote, "out");
      this.lastActivity = Date.now();
      return true;
    }
    if (this.queue.length >= this.deps.settings.maxQueue) {
      this.deps.s2sMetrics.failure(this.remote, "queue-full");
      this.deps.bounce(
        stanza,
        new StanzaError("resource-constraint", `too many stanzas waiting for the link to ${this.remote}`),
      );
      return true;
    }
    this.queue.push(stanza);
    return true;
  }

  /**
   * XEP-0220 §2.1.2: asks the remote domain (as Authoritative Server) whether `key` is one it gave
   * out for our stream `id`. Resolves with its answer, or an error if the link fails first.
   */
  verify(id: string, key: string): Promise<VerifyOutcome> {
    if (this.state === "closed") {
      return Promise.resolve({ type: "error", condition: "remote-connection-failed" });
    }
    return this.verifies.add(id, key, (request) => this.dialbackOpen && Boolean(this.conn?.send(request)));
  }

  /** Closes the link (idle, shutdown). Stanzas still queued go back with `error`. */
  close(reason: string, error = timedOut(reason)): void {
    if (this.state === "closed") return;
    this.log.info({ reason }, "closing s2s link");
    this.finish(this.state === "ready" ? undefined : error, error);
    this.conn?.close();
    this.pendingSocket?.destroy();
  }

  private async connect(): Promise<void> {
    let targets: Target[];
    try {
      targets = await this.deps.resolve(this.remote);
    } catch (err) {
      return this.fail("no-route", notFound((err as Error).message));
    }
    if (this.state === "closed") return;
    if (targets.length === 0) {
      return this.fail(
        "no-route",
        notFound(`no route to ${this.remote} (no s2s.routes entry or DNS record)`),
      );
    }
    const errors: string[] = [];
    for (const target of targets) {
      if (this.isClosed) return;
      try {
        const socket = await openTarget(target, clientTlsOptions(this.remote, this.deps.tls), (pending) => {
          this.pendingSocket = pending;
        });
        this.pendingSocket = undefined;
        if (this.isClosed) {
          socket.destroy();
          return;
        }
        this.attach(socket, target);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        errors.push(`${target.host}:${target.port}${target.directTls ? " (TLS)" : ""}: ${code}`);
        this.log.debug({ target, err: (err as Error).message }, "s2s connect attempt failed");
      }
    }
    this.fail("unreachable", notFound(`cannot connect to ${this.remote} (${errors.join("; ")})`));
  }

  private attach(socket: net.Socket, target: Target): void {
    socket.setNoDelay(true);
    this.state = "negotiating";
    const conn = new XmlConnection(socket, {
      id: `out-${this.remote}`,
      secure: target.directTls,
      contentNamespace: NS.server,
      headerXmlns: DIALBACK_XMLNS, // XEP-0220 §2.4.1
      limits: this.deps.settings.limits,
      log: this.log,
      metrics: this.deps.metrics,
    });
    this.conn = conn;
    const auth = new OutLinkAuth({
      local: this.local,
      remote: this.remote,
      settings: this.deps.settings,
      tls: this.deps.tls,
      secret: this.deps.secret,
      log: this.log,
      conn,
      directTls: target.directTls,
      peer: target.directTls ? peerCertificate(socket as tls.TLSSocket) : undefined,
      link: this,
      events: {
        dialbackOpen: () => {
          this.dialbackOpen = true;
          this.flushVerifies();
        },
        authenticated: (how) => this.becomeReady(how),
        failed: (kind, error) => this.fail(kind, error),
        problem: (problem) => {
          this.problem = problem;
        },
        failWithProblem: (fallback) => {
          this.problem ??= fallback;
          this.fail(this.problem.kind, this.problem.error);
        },
      },
    });
    this.log.debug({ target }, "s2s connected");
    conn.start(this.handler(auth));
    conn.sendHeader({ from: this.local, to: this.remote }); // RFC 6120 §4.7.1
  }

  private handler(auth: OutLinkAuth): StreamHandler {
    return {
      onHeader: (attrs) => auth.onHeader(attrs),
      onElement: (el) => this.onElement(el, auth),
      onClosed: (reason) => this.onClosed(reason),
      onIdle: () => {},
    };
  }

  private async onElement(el: Element, auth: OutLinkAuth): Promise<void> {
    const ns = el.attrs.xmlns;
    if (ns === NS.stream && el.name === "features") return auth.onFeatures(el);
    if (ns === NS.stream && el.name === "error") return this.onStreamError(el);
    if (ns === NS.tls) return auth.onTls(el);
    if (ns === NS.sasl) return auth.onSasl(el);
    if (ns === NS_DIALBACK) return el.name === "verify" ? this.onVerifyAnswer(el) : auth.onDialbackResult(el);
    // An outgoing stream carries our stanzas only (no XEP-0288 bidirectional streams here).
    this.log.warn({ name: el.name, ns }, "unexpected element on an outgoing s2s stream: ignored");
  }

  /** XEP-0220 §2.1.2: the Authoritative Server's answer to one of our <db:verify/> requests. */
  private onVerifyAnswer(el: Element): void {
    const { from, to, type, id } = el.attrs;
    // An answer must match a request made on this stream (XEP-0220 §3: else ignored).
    if (from !== this.remote || to !== this.local || !id || !this.verifies.has(id) || !type) {
      this.log.warn({ from, to, id, type }, "unsolicited db:verify answer: ignored");
      return;
    }
    const outcome: VerifyOutcome =
      type === "valid" || type === "invalid"
        ? { type }
        : { type: "error", condition: dialbackErrorCondition(el) ?? "remote-server-not-found" };
    this.verifies.settle(id, outcome);
  }

  private onStreamError(el: Element): void {
    const condition = el
      .getChildElements()
      .find((c) => c.attrs.xmlns === NS.streamErrors && c.name !== "text");
    const text = el.getChildText("text", NS.streamErrors);
    this.log.warn({ condition: condition?.name, text }, "stream error from the peer");
    this.problem = {
      kind: "stream-error",
      error: notFound(
        `${this.remote} closed the stream: ${condition?.name ?? "error"}${text ? ` (${text})` : ""}`,
      ),
    };
  }

  private becomeReady(how: string): void {
    if (this.state !== "negotiating") return;
    this.state = "ready";
    this.authenticatedWith = how;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.gauge.set(this.remote, "ready");
    this.deps.metrics.connections.inc({ kind: "s2s-out", state: "authenticated" });
    this.log.info({ how, queued: this.queue.length }, "s2s link ready");
    this.deps.events.ready(this);
    for (const stanza of this.queue.splice(0)) this.send(stanza);
    this.lastActivity = Date.now();
    this.scheduleIdle(this.deps.settings.idleTimeoutMs);
  }

  private scheduleIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      const quiet = Date.now() - this.lastActivity;
      const { idleTimeoutMs } = this.deps.settings;
      if (quiet >= idleTimeoutMs) this.close(`idle for ${Math.round(quiet / 1000)} s`);
      else this.scheduleIdle(idleTimeoutMs - quiet);
    }, ms);
    this.idleTimer.unref();
  }

  private onClosed(reason: string): void {
    if (this.state === "closed") return;
    if (this.state === "ready") {
      this.log.info({ reason, problem: this.problem?.error.text }, "s2s link closed by the peer");
      this.finish(undefined, timedOut("link closed"));
      return;
    }
    // XEP-0220 §2.1.1: a stream closed while we wait is like a dialback error.
    const problem = this.problem ?? {
      kind: "closed" as const,
      error: timedOut(`${this.remote} closed the connection during setup`),
    };
    this.fail(problem.kind, problem.error);
  }

  private fail(kind: FailureKind, error: StanzaError): void {
    if (this.state === "closed") return;
    const fields = { reason: error.text, kind, queued: this.queue.length };
    // A retry nobody waits for is routine; a failure that bounces stanzas is worth a warning.
    if (this.deps.background && this.queue.length === 0) this.log.info(fields, "s2s link failed (retry)");
    else this.log.warn(fields, "s2s link failed");
    this.deps.s2sMetrics.failure(this.remote, kind);
    this.finish(error, error, kind);
    this.conn?.close();
    this.pendingSocket?.destroy();
  }

  /** `error` set: the link failed (for back-off); `bounceWith`: what queued stanzas get. */
  private finish(error: StanzaError | undefined, bounceWith: StanzaError, kind?: FailureKind): void {
    const wasReady = this.state === "ready";
    this.state = "closed";
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.gauge.clear();
    if (wasReady) this.deps.metrics.connections.dec({ kind: "s2s-out", state: "authenticated" });
    for (const stanza of this.queue.splice(0)) this.deps.bounce(stanza, bounceWith);
    const condition =
      bounceWith.condition === "remote-server-timeout" ? "remote-server-timeout" : "remote-connection-failed";
    this.verifies.settleAll({ type: "error", condition });
    this.deps.events.ended(this, { wasReady, ...(error ? { error } : {}), ...(kind ? { kind } : {}) });
  }

  private flushVerifies(): void {
    this.verifies.flush((request) => this.conn!.send(request));
  }
}
