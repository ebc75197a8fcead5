/**
 * Builds and runs one broker: storage, certificate, router, modules, listeners. Stops them in the
 * reverse order, closing every stream with system-shutdown first.
 * References: RFC 6120 §4.9.3.22 (system-shutdown), DESIGN.md §1.6 (one process runs everything).
 */
import { EventEmitter } from "node:events";
import { access, constants, mkdir } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import { accountMigrations } from "./accounts/migrations.ts";
import { type AccountStore, createAccountStore } from "./accounts/store.ts";
import type { Config } from "./config.ts";
import { ModuleHost } from "./modules/host.ts";
import type { LocalSession, Module } from "./modules/module.ts";
import { ensureCertificate } from "./net/certs.ts";
import { type HttpServer, startHttp } from "./net/http.ts";
import { type Listener, listenTcp, listenTls } from "./net/listen.ts";
import { ALPN_CLIENT, createTlsContext, type TlsServerSettings } from "./net/tls.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { createMetrics, type Metrics } from "./observability/metrics.ts";
import { type DeliveryObserver, Router } from "./routing/router.ts";
import { SessionDirectory } from "./routing/sessions.ts";
import { type S2sService, startS2s } from "./s2s/service.ts";
import { createSaslMechanisms } from "./sasl/mechanisms.ts";
import type { Storage } from "./storage/db.ts";
import { openStorage } from "./storage/open.ts";
import { loadSecretFile } from "./storage/secret-file.ts";
import { createC2sAcceptor } from "./streams/c2s-listener.ts";

export interface BrokerOptions {
  readonly config: Config;
  readonly modules: readonly Module[];
  readonly log?: Logger;
}

/**
 * Session lifecycle events modules listen to (service "session-events"): "session-bound",
 * "session-available" (initial presence sent), "session-ended" (its last presence still readable).
 */
export interface SessionEvents extends EventEmitter {
  on(event: "session-bound" | "session-available", listener: (session: LocalSession) => void): this;
  on(event: "session-ended", listener: (session: LocalSession, reason: string) => void): this;
}

export interface Broker {
  readonly config: Config;
  readonly domain: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly storage: Storage;
  readonly accounts: AccountStore;
  readonly router: Router;
  readonly sessions: SessionDirectory;
  /** Bound ports (the real ones when the config asked for 0 in tests). */
  readonly ports: {
    readonly c2s?: number;
    readonly c2sTls?: number;
    readonly http?: number;
    readonly s2s?: number;
    readonly s2sTls?: number;
  };
  /** Federation: outgoing link pool and incoming s2s streams. */
  readonly s2s: S2sService;
  /** PEM of the certificate the listeners present (tests trust it). */
  readonly certificatePem: string;
  stop(): Promise<void>;
}

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

async function ensureWritableDir(dir: string): Promise<void> {
  try {
    // Owner-only, as openStorage intends: the database, its socket and the TLS key live here.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new StartupError(
      `data directory ${dir} is not writable (${code}); set data_dir or fix its permissions`,
    );
  }
}

/**
 * Starts a broker. Tests pass ports of 0 through `listenPorts` to get ephemeral ones; in normal
 * operation a port of 0 in the config disables that listener.
 */
export async function startBroker(opts: BrokerOptions & { ephemeralPorts?: boolean }): Promise<Broker> {
  const { config } = opts;
  const log = opts.log ?? createLogger(config.log.level);
  const cleanup: (() => Promise<void> | void)[] = [];
  const undo = async () => {
    for (const fn of cleanup.reverse()) await Promise.resolve(fn()).catch(() => {});
  };
  try {
    await ensureWritableDir(config.data_dir);
    const metrics = createMetrics();
    const storage = await openStorage(config, log, { role: "broker" });
    cleanup.push(() => storage.close());
    await storage.migrate("accounts", accountMigrations);
    const accounts = createAccountStore(storage.db);

    const certificate = await ensureCertificate(config, log);
    const material = { certPem: certificate.certPem, keyPem: certificate.keyPem };
    const tls: TlsServerSettings = { material, context: createTlsContext(material) };

    const sessions = new SessionDirectory();
    const router = new Router({ domain: config.domain, sessions, log, metrics });
    cleanup.push(() => router.cancelPending());
    const events = new EventEmitter() as SessionEvents;

    const wantPort = (port: number) => (opts.ephemeralPorts ? port >= 0 : port > 0);
    const http: HttpServer | undefined = wantPort(config.http.port)
      ? await startHttp({ port: config.http.port, bind: config.http.bind, metrics, log })
      : undefined;
    if (http) cleanup.push(() => http.close());

    const host = new ModuleHost({
      router,
      sessions,
      storage,
      log,
      metrics,
      moduleConfig: config.modules,
      ...(http ? { http: (mount: (router: HttpServer["router"]) => void) => mount(http.router) } : {}),
    });
    host.provide("accounts", accounts);
    host.provide("session-events", events);
    host.provide("deliveries", { onDelivered: (observer: DeliveryObserver) => router.onDelivered(observer) });
    host.provide("hosts", {
      get: (domain: string) => router.host(domain),
      each: (fn: Parameters<Router["eachHost"]>[0]) => router.eachHost(fn),
      components: () => [...router.hosts.values()].filter((h) => h.isComponent),
    });
    await host.start(opts.modules);
    cleanup.push(() => host.stop());
    // After the modules (stopped before them): their last presence still goes out over s2s.
    const s2s = await startS2s({
      config,
      router,
      material,
      log,
      metrics,
      ...(opts.ephemeralPorts && { ephemeralPorts: true }),
    });
    cleanup.push(() => s2s.stop());

    const c2s = config.c2s;
    // Unknown users get fake SCRAM salts derived from this secret; keeping it across restarts means
    // an attacker comparing salts before and after a restart cannot tell unknown users from known.
    const fakeSecret = Buffer.from(
      await loadSecretFile(config.data_dir, "sasl", "fake-credential-secret"),
      "hex",
    );
    const acceptor = createC2sAcceptor({
      deps: {
        domain: config.domain,
        settings: {
          requireTls: c2s.require_tls,
          authTimeoutMs: c2s.auth_timeout * 1000,
          idleTimeoutMs: c2s.idle_timeout * 1000,
          keepaliveMs: c2s.keepalive_interval * 1000,
          maxAuthFailures: c2s.max_auth_failures,
          resumeTimeoutMs: c2s.resume_timeout * 1000,
          maxUnacked: c2s.max_unacked,
        },
        resumable: new Map(),
        streamFeatures: host.streamFeatures,
        preAuth: { features: host.preAuthFeatures, handle: (iq, stream) => host.handlePreAuthIq(iq, stream) },
        router,
        sessions,
        mechanisms: createSaslMechanisms({ fakeSecret }),
        credentials: async (username, hash) => {
          const end = metrics.storageLatency.startTimer({ operation: "credentials" });
          try {
            return await accounts.credentials(username, hash);
          } finally {
            end();
          }
        },
        tls,
        log,
        metrics,
        events: {
          sessionBound: (s) => events.emit("session-bound", s),
          sessionAvailable: (s) => events.emit("session-available", s),
          sessionEnded: (s, reason) => events.emit("session-ended", s, reason),
        },
      },
      limits: {
        maxStanzaBytes: config.limits.max_stanza_bytes,
        maxDepth: config.limits.max_depth,
        bytesPerSecond: config.limits.c2s_bytes_per_second,
      },
      maxUnauthenticated: c2s.max_unauthenticated,
      maxUnauthenticatedPerIp: c2s.max_unauthenticated_per_ip,
      log,
    });
    const listeners: Listener[] = [];
    const ports: { c2s?: number; c2sTls?: number; http?: number; s2s?: number; s2sTls?: number } = {};
    if (http) ports.http = http.port;
    if (s2s.port !== undefined) ports.s2s = s2s.port;
    if (s2s.tlsPort !== undefined) ports.s2sTls = s2s.tlsPort;
    if (wantPort(c2s.port)) {
      const l = await listenTcp({
        port: c2s.port,
        host: c2s.bind,
        name: "c2s",
        log,
        onConnection: (socket: Socket) => acceptor.accept(socket, false),
      });
      listeners.push(l);
      ports.c2s = l.port;
    }
    if (wantPort(c2s.tls_port)) {
      const l = await listenTls({
        port: c2s.tls_port,
        host: c2s.bind,
        name: "c2s-tls",
        log,
        ...tls,
        alpn: [ALPN_CLIENT],
        onConnection: (socket: Socket) => acceptor.accept(socket, true),
      });
      listeners.push(l);
      ports.c2sTls = l.port;
    }

    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        log.info("stopping");
        // Stop accepting, then end every stream with system-shutdown (RFC 6120 §4.9.3.22).
        for (const l of listeners) (l.server as Server).close();
        const streams = [...acceptor.streams];
        for (const stream of streams) stream.close("system-shutdown", "the server is stopping");
        await Promise.all(listeners.map((l) => l.close(3000)));
        // Unacknowledged messages of ending sessions go to offline storage before it closes.
        await Promise.race([
          Promise.all(streams.map((s) => s.ended)),
          new Promise((resolve) => setTimeout(resolve, 5000).unref()),
        ]);
        await undo();
        log.info("stopped");
      })();
      return stopping;
    };
    return {
      config,
      domain: config.domain,
      log,
      metrics,
      storage,
      accounts,
      router,
      sessions,
      ports,
      s2s,
      certificatePem: certificate.certPem,
      stop,
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
