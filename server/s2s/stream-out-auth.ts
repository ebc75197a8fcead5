/**
 * The negotiation on an outgoing s2s stream, from its first header to authentication: STARTTLS,
 * then SASL EXTERNAL when the peer offers it, else (or when it refuses) dialback. The link that
 * owns the stream (stream-out.ts) keeps the connection's life cycle and learns the outcome through
 * events; it also keeps the dialback verification requests this stream carries.
 * References: RFC 6120 §4.7.5 (version), §5.4 (STARTTLS, client side), §5.4.3.3 and §6.4.6
 * (stream restarts), §6.4 and XEP-0178 §3 (SASL EXTERNAL; the authzid is our domain), RFC 7590 §3
 * (TLS required), XEP-0220 §2.1.1 (Initiating Server), §2.5 (errors), §3 (unsolicited answers are
 * ignored), XEP-0185 §3 (dialback key).
 */
import type tls from "node:tls";
import { Element } from "ltx";
import type { Logger } from "../observability/logger.ts";
import type { XmlConnection } from "../streams/xml-connection.ts";
import { StanzaError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import { checkPeer, type PeerCertificate, peerCertificate } from "./certificates.ts";
import { type ClientTls, clientTlsOptions, startTlsClient } from "./connect.ts";
import { type DialbackSecret, dialbackElement, dialbackErrorCondition, dialbackKey } from "./dialback.ts";
import { notFound, type Problem, timedOut } from "./link-errors.ts";
import type { FailureKind } from "./link-metrics.ts";

export interface OutLinkAuthDeps {
  readonly local: string;
  readonly remote: string;
  readonly settings: { readonly requireEncryption: boolean; readonly secureAuth: boolean };
  readonly tls: ClientTls;
  readonly secret: DialbackSecret;
  readonly log: Logger;
  readonly conn: XmlConnection;
  /** The stream is TLS from its first byte (XEP-0368 direct TLS), with this peer certificate. */
  readonly directTls: boolean;
  readonly peer: PeerCertificate | undefined;
  /** Where the link stands: nothing more is negotiated once it is ready or closed. */
  readonly link: { readonly isReady: boolean; readonly isClosed: boolean };
  readonly events: {
    /** Dialback elements may go out now: the stream is open past TLS and not inside SASL. */
    dialbackOpen(): void;
    /** The peer accepted us: "SASL EXTERNAL" or "dialback". */
    authenticated(how: string): void;
    failed(kind: FailureKind, error: StanzaError): void;
    /** What the close that is about to follow should report. */
    problem(problem: Problem): void;
    /** Fail with the problem already recorded, or else with `fallback`. */
    failWithProblem(fallback: Problem): void;
  };
}

export class OutLinkAuth {
  private readonly deps: OutLinkAuthDeps;
  private readonly conn: XmlConnection;
  private readonly remote: string;
  private streamId: string | undefined;
  private secure: boolean;
  private peer: PeerCertificate | undefined;
  private sasl: "none" | "attempting" | "failed" | "done" = "none";
  private dialbackSent = false;

  constructor(deps: OutLinkAuthDeps) {
    this.deps = deps;
    this.conn = deps.conn;
    this.remote = deps.remote;
    this.secure = deps.directTls;
    this.peer = deps.peer;
  }

  onHeader(attrs: Record<string, string>): void {
    this.streamId = attrs.id; // XEP-0220 §2.1.1: the key is bound to the receiving stream's id
    if (!attrs.version || Number.parseFloat(attrs.version) < 1) {
      // RFC 6120 §4.7.5: a pre-1.0 peer sends no features (so no STARTTLS either).
      if (this.deps.settings.requireEncryption) {
        this.deps.events.failed("no-tls", notFound(`${this.remote} speaks pre-XMPP-1.0 streams without TLS`));
        return;
      }
      this.deps.events.dialbackOpen();
      this.startDialback("the peer sends no stream features");
    }
  }

  async onFeatures(features: Element): Promise<void> {
    const { requireEncryption, secureAuth } = this.deps.settings;
    if (this.deps.link.isReady) return;
    if (!this.secure) {
      if (features.getChild("starttls", NS.tls)) {
        this.conn.send(new Element("starttls", { xmlns: NS.tls })); // RFC 6120 §5.4.2.1
        return;
      }
      if (requireEncryption) {
        // RFC 7590 §3: no TLS, no federation.
        this.deps.events.failed(
          "no-tls",
          notFound(`${this.remote} offers no STARTTLS and s2s.require_encryption is on`),
        );
        return;
      }
    }
    if (this.sasl === "done") {
      this.deps.events.dialbackOpen(); // verification requests may go out on the restarted stream
      this.deps.events.authenticated("SASL EXTERNAL");
      return;
    }
    if (secureAuth) {
      const check = checkPeer(this.peer, this.remote);
      if (!check.ok) {
        this.deps.events.failed(
          "certificate",
          notFound(`${this.remote}: ${check.reason} (s2s.secure_auth is on)`),
        );
        return;
      }
    }
    const mechanisms = features
      .getChild("mechanisms", NS.sasl)
      ?.getChildren("mechanism")
      .map((m) => m.text().trim());
    if (this.secure && this.sasl === "none" && mechanisms?.includes("EXTERNAL")) {
      // XEP-0178 §3: the peer accepted our certificate; the authzid is our domain.
      this.sasl = "attempting";
      const auth = new Element("auth", { xmlns: NS.sasl, mechanism: "EXTERNAL" });
      auth.t(Buffer.from(this.deps.local).toString("base64"));
      this.conn.send(auth);
      return;
    }
    this.deps.events.dialbackOpen();
    this.startDialback(mechanisms ? "SASL EXTERNAL not offered" : "no SASL offered");
  }

  async onTls(el: Element): Promise<void> {
    if (el.name !== "proceed" || this.secure) {
      this.deps.events.failed("tls", notFound(`${this.remote} refused STARTTLS`));
      return;
    }
    const conn = this.conn;
    try {
      await conn.startTls((plain) =>
        startTlsClient(plain, clientTlsOptions(this.remote, this.deps.tls)).catch((err: Error) => {
          // Recorded before the close that the failed handshake causes.
          this.deps.events.problem({
            kind: "tls",
            error: notFound(`TLS with ${this.remote} failed: ${err.message}`),
          });
          throw err;
        }),
      );
    } catch (err) {
      this.deps.events.failWithProblem({
        kind: "tls",
        error: notFound(`TLS with ${this.remote} failed: ${(err as Error).message}`),
      });
      return;
    }
    this.secure = true;
    this.peer = peerCertificate(conn.socket as tls.TLSSocket);
    const check = checkPeer(this.peer, this.remote);
    this.deps.log.debug(
      check.ok ? { certificate: check.match } : { certificate: check.reason },
      "s2s TLS established",
    );
    conn.sendHeader({ from: this.deps.local, to: this.remote }); // RFC 6120 §5.4.3.3: a new stream
  }

  onSasl(el: Element): void {
    if (this.sasl !== "attempting") return;
    if (el.name === "success") {
      this.sasl = "done";
      this.conn.resetStream(); // RFC 6120 §6.4.6
      this.conn.sendHeader({ from: this.deps.local, to: this.remote });
      return;
    }
    if (el.name === "failure") {
      const condition = el.getChildElements()[0]?.name ?? "failure";
      this.sasl = "failed";
      this.deps.log.info({ condition }, "SASL EXTERNAL refused by the peer");
      this.deps.events.dialbackOpen();
      // COMPAT: like Prosody, fall back to dialback on the same stream (RFC 6120 §6.4.5 retries).
      this.startDialback(`SASL EXTERNAL refused (${condition})`);
    }
  }

  /** XEP-0220 §2.1.1: the Receiving Server's answer to our <db:result/>. */
  onDialbackResult(el: Element): void {
    if (el.name !== "result") return;
    const { from, to, type } = el.attrs;
    if (!this.dialbackSent || from !== this.remote || to !== this.deps.local || !type) {
      this.deps.log.warn({ from, to, type }, "unsolicited db:result answer: ignored"); // XEP-0220 §3
      return;
    }
    if (type === "valid") {
      this.deps.events.authenticated("dialback");
    } else if (type === "invalid") {
      // XEP-0220 §2.1.1: queued stanzas return with internal-server-error.
      this.deps.events.failed(
        "dialback-invalid",
        new StanzaError("internal-server-error", `${this.remote} did not accept our dialback key`),
      );
    } else {
      // XEP-0220 §2.5: a dialback error returns queued stanzas with remote-server-timeout.
      const condition = dialbackErrorCondition(el) ?? "undefined-condition";
      this.deps.events.failed(
        "dialback-error",
        timedOut(`${this.remote} could not verify us (${condition})`),
      );
    }
  }

  private startDialback(why: string): void {
    if (this.dialbackSent || this.deps.link.isReady || this.deps.link.isClosed) return;
    if (this.deps.settings.secureAuth) {
      this.deps.events.failed(
        "certificate",
        notFound(
          `${this.remote} did not accept our certificate (${why}); s2s.secure_auth allows no dialback`,
        ),
      );
      return;
    }
    if (!this.streamId) {
      this.deps.events.failed(
        "stream-error",
        notFound(`${this.remote} sent no stream id: dialback impossible`),
      );
      return;
    }
    this.dialbackSent = true;
    this.deps.log.debug({ why }, "authenticating with dialback");
    // XEP-0220 §2.1.1 step 1; XEP-0185 §3 key.
    const key = dialbackKey(this.deps.secret, this.remote, this.deps.local, this.streamId);
    this.conn.send(dialbackElement("result", { from: this.deps.local, to: this.remote }, key));
  }
}
