/**
 * Federation for one broker: the s2s listeners (STARTTLS, and optionally direct TLS), the pool of
 * outgoing links, and the router hook that hands them every stanza for a domain we do not serve.
 * Stanzas arriving from peers go through the router like any other (origin "s2s"), so presence,
 * subscriptions, probes and iq behave across domains as they do locally.
 * References: RFC 6120 §10.4 (remote domains), §4.9.3.22 (system-shutdown), RFC 7590,
 * XEP-0368 §3 (direct TLS, ALPN xmpp-server), XEP-0220, XEP-0178.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { Element } from "ltx";
import type { Config } from "../config.ts";
import { normalizeDomainpart } from "../jid.ts";
import type { PemPair } from "../net/certs.ts";
import { type Listener, listenTcp, listenTls } from "../net/listen.ts";
import { ALPN_SERVER, createTlsContext, type TlsServerSettings } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Router } from "../routing/router.ts";
import { type ConnectionLimits, XmlConnection } from "../streams/xml-connection.ts";
import { NS } from "../xml/namespaces.ts";
import { trustAnchors } from "./certificates.ts";
import { federationAllowed } from "./config.ts";
import { DIALBACK_XMLNS, loadDialbackSecret } from "./dialback.ts";
import { S2sMetrics } from "./link-metrics.ts";
import { S2sPool } from "./pool.ts";
import { Resolver } from "./resolve.ts";
import { starttlsUpgrader } from "./starttls.ts";
import { InStream } from "./stream-in.ts";

export interface S2sService {
  /** Bound ports (the real ones when the config asked for 0 in tests). */
  readonly port: number | undefined;
  readonly tlsPort: number | undefined;
  readonly pool: S2sPool;
  readonly streams: ReadonlySet<InStream>;
  /** Sets (or with undefined removes) a static route, as `[s2s.routes]` would (tests, operators). */
  setRoute(domain: string, route: string | undefined): void;
  stop(): Promise<void>;
}

export interface S2sOptions {
  readonly config: Config;
  readonly router: Router;
  /** The broker's certificate and key (also presented as our client certificate). */
  readonly material: PemPair;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Port 0 means an ephemeral port (tests) instead of "disabled". */
  readonly ephemeralPorts?: boolean;
}

export async function startS2s(opts: S2sOptions): Promise<S2sService> {
  const { config, router, metrics } = opts;
  const s2s = config.s2s;
  const log = opts.log.child({ component: "s2s" });
  const secret = await loadDialbackSecret(config.data_dir);
  const ca = trustAnchors(s2s.ca_file);
  const s2sMetrics = new S2sMetrics(metrics);
  const limits: ConnectionLimits = {
    maxStanzaBytes: config.limits.max_stanza_bytes,
    maxDepth: config.limits.max_depth,
    bytesPerSecond: s2s.bytes_per_second,
  };
  const allowed = (domain: string) => federationAllowed(s2s, domain);
  const serves = (domain: string) => router.host(domain) !== undefined;
  const resolver = new Resolver({ routes: s2s.routes, dns: s2s.dns, log });

  const pool = new S2sPool({
    link: {
      resolve: (domain) => resolver.resolve(domain),
      settings: {
        requireEncryption: s2s.require_encryption,
        secureAuth: s2s.secure_auth,
        connectTimeoutMs: s2s.connect_timeout * 1000,
        idleTimeoutMs: s2s.idle_timeout * 1000,
        maxQueue: s2s.max_queue,
        limits,
      },
      tls: { certPem: opts.material.certPem, keyPem: opts.material.keyPem, ca },
      secret,
      log,
      metrics,
      s2sMetrics,
      bounce: (stanza, error) => router.bounce(stanza, error),
    },
    allowed,
    maxRetryDelayMs: s2s.max_retry_delay * 1000,
    demandWindowMs: s2s.idle_timeout * 1000,
    log,
    s2sMetrics,
  });

  // RFC 6120 §10.4: a stanza for a domain we do not serve goes out over s2s.
  router.addRemoteHook(({ stanza, from, to }) => {
    if (!serves(from.domain)) return undefined; // not ours to send: the router bounces it
    pool.send(stanza, from.domain, to.domain);
    return true;
  });

  // RFC 6120 §13.7.2: the peer's certificate is requested, and checked by the stream.
  const material = { certPem: opts.material.certPem, keyPem: opts.material.keyPem, ca };
  const tls: TlsServerSettings = { material, context: createTlsContext(material), requestCert: true };
  const starttls = starttlsUpgrader(tls);
  const streams = new Set<InStream>();
  const accept = (socket: Socket, secure: boolean) => {
    socket.setNoDelay(true);
    socket.pause();
    const id = `s2s-${randomBytes(6).toString("hex")}`;
    const conn = new XmlConnection(socket, {
      id,
      secure,
      contentNamespace: NS.server,
      headerXmlns: DIALBACK_XMLNS,
      limits,
      log: log.child({ conn: id }),
      metrics,
    });
    const stream = new InStream(conn, {
      settings: {
        requireEncryption: s2s.require_encryption,
        secureAuth: s2s.secure_auth,
        authTimeoutMs: s2s.auth_timeout * 1000,
        idleTimeoutMs: s2s.idle_timeout * 1000,
      },
      defaultDomain: config.domain,
      serves,
      allowed,
      startTls: starttls.upgrade,
      secret,
      verify: (local, remote, streamId, key) => pool.verify(local, remote, streamId, key),
      route: (stanza: Element) => router.route(stanza, { kind: "s2s" }),
      log,
      metrics,
      s2sMetrics,
    });
    streams.add(stream);
    void stream.closed.then(() => streams.delete(stream));
  };

  const listeners: Listener[] = [];
  const wantPort = (port: number) => (opts.ephemeralPorts ? port >= 0 : port > 0);
  let port: number | undefined;
  let tlsPort: number | undefined;
  try {
    if (wantPort(s2s.port)) {
      const l = await listenTcp({
        port: s2s.port,
        host: s2s.bind,
        name: "s2s",
        log,
        maxConnections: s2s.max_connections,
        onConnection: (socket) => accept(socket, false),
      });
      listeners.push(l);
      port = l.port;
    }
    // The direct-TLS listener is off unless configured (0 is "off" even in tests).
    if (s2s.tls_port > 0) {
      const l = await listenTls({
        port: s2s.tls_port,
        host: s2s.bind,
        name: "s2s-tls",
        log,
        ...tls,
        alpn: [ALPN_SERVER],
        maxConnections: s2s.max_connections,
        onConnection: (socket) => accept(socket, true),
      });
      listeners.push(l);
      tlsPort = l.port;
    }
  } catch (err) {
    pool.stop();
    await Promise.all(listeners.map((l) => l.close(0)));
    throw err;
  }

  return {
    port,
    tlsPort,
    pool,
    streams,
    setRoute: (domain, route) => resolver.setRoute(normalizeDomainpart(domain), route),
    async stop() {
      for (const l of listeners) l.server.close();
      for (const stream of streams) stream.close("system-shutdown", "the server is stopping");
      pool.stop();
      starttls.close();
      await Promise.race([
        Promise.all([...streams].map((s) => s.closed)),
        new Promise((resolve) => setTimeout(resolve, 3000).unref()),
      ]);
      await Promise.all(listeners.map((l) => l.close(1000)));
    },
  };
}
