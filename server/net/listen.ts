/**
 * TCP and direct-TLS listeners: resolve once listening, fail with a message an operator can act
 * on (port in use, no permission), hand each accepted socket to the stream layer.
 *
 * References: RFC 6120 §5 (c2s/s2s over TCP, STARTTLS on the plain port), XEP-0368 §3 (direct
 * TLS ports: the TLS handshake comes first, ALPN xmpp-client), RFC 7590 (TLS versions).
 */
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "../observability/logger.ts";
import { type TlsServerSettings, tlsServerOptions } from "./tls.ts";

export class ListenError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = "ListenError";
    this.code = code;
  }
}

/** Turns a listen() error into a sentence: "port 5222 on 0.0.0.0 is already in use (c2s)". */
export function describeListenError(
  err: NodeJS.ErrnoException,
  port: number,
  host: string,
  name: string,
): ListenError {
  switch (err.code) {
    case "EADDRINUSE":
      return new ListenError(`port ${port} on ${host} is already in use (${name})`, err.code);
    case "EACCES":
      return new ListenError(
        `permission denied to listen on port ${port} on ${host} (${name}); ports below 1024 need privileges`,
        err.code,
      );
    case "EADDRNOTAVAIL":
      return new ListenError(
        `address ${host} is not available on this machine (${name}, port ${port})`,
        err.code,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ListenError(`cannot resolve bind address ${host} (${name})`, err.code);
    default:
      return new ListenError(`cannot listen on port ${port} on ${host} (${name}): ${err.message}`, err.code);
  }
}

/**
 * listen() as a promise: resolves with the bound port (the real one for port 0), rejects with a
 * ListenError. Works for any net.Server (plain, TLS, HTTP).
 */
export function listenServer(server: net.Server, port: number, host: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      reject(describeListenError(err, port, host, name));
    };
    const onListening = (): void => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

export interface ListenOptions<S extends net.Socket = net.Socket> {
  /** 0 = an ephemeral port (tests); the broker itself treats port 0 in config as "disabled". */
  readonly port: number;
  readonly host: string;
  /** For messages and logs: "c2s", "c2s-tls", "s2s". */
  readonly name: string;
  readonly log: Logger;
  readonly onConnection: (socket: S) => void;
  /** Accepted sockets beyond this are closed at once (net.Server.maxConnections). */
  readonly maxConnections?: number;
}

export interface TlsListenOptions extends ListenOptions<tls.TLSSocket>, TlsServerSettings {
  /** Time a peer has to finish the TLS handshake (default 30 s; Node's own default is 120 s). */
  readonly handshakeTimeoutMs?: number;
}

export interface Listener {
  readonly server: net.Server;
  readonly name: string;
  readonly host: string;
  /** The bound port (the ephemeral one when asked for port 0). */
  readonly port: number;
  /**
   * Stops accepting, waits for open connections to end (the streams should be closed with
   * system-shutdown first), and destroys what is left after `graceMs` (default 5 s).
   */
  close(graceMs?: number): Promise<void>;
}

/** Common wiring: no Nagle, connection tracking for close(), drop logging, a listen error → message. */
type CommonOptions = Pick<ListenOptions, "port" | "host" | "name" | "log" | "maxConnections">;

async function start(server: net.Server, opts: CommonOptions, kind: string): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    // Stanzas are small and interactive: send them now, not after the peer's ACK (Nagle).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  if (opts.maxConnections !== undefined) server.maxConnections = opts.maxConnections;
  let lastDropLog = 0;
  server.on("drop", (data?: { remoteAddress?: string }) => {
    // At most one line per 10 s: a flood must not become a log flood.
    const now = Date.now();
    if (now - lastDropLog < 10_000) return;
    lastDropLog = now;
    opts.log.warn(
      { listener: opts.name, max: server.maxConnections, remote: data?.remoteAddress },
      "connection limit reached, dropping connections",
    );
  });
  server.on("error", (err) => opts.log.error({ err, listener: opts.name }, "listener error"));
  const port = await listenServer(server, opts.port, opts.host, opts.name);
  opts.log.info({ listener: opts.name, host: opts.host, port, kind }, "listening");

  let closing: Promise<void> | undefined;
  const close = (graceMs = 5_000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      if (graceMs <= 0) for (const socket of sockets) socket.destroy();
    });
    return closing;
  };
  return { server, name: opts.name, host: opts.host, port, close };
}

/** A plain TCP listener (c2s/s2s with STARTTLS, components). */
export function listenTcp(opts: ListenOptions): Promise<Listener> {
  const server = net.createServer((socket) => {
    // Without a listener an 'error' (ECONNRESET) would crash the process; the stream adds its own.
    socket.on("error", (err) => opts.log.debug({ err, listener: opts.name }, "socket error"));
    opts.onConnection(socket);
  });
  return start(server, opts, "tcp");
}

/** A direct-TLS listener (XEP-0368): TLS first, then the XML stream. */
export function listenTls(opts: TlsListenOptions): Promise<Listener> {
  const server = tls.createServer(
    { ...tlsServerOptions(opts), handshakeTimeout: opts.handshakeTimeoutMs ?? 30_000 },
    (socket) => {
      socket.on("error", (err) => opts.log.debug({ err, listener: opts.name }, "socket error"));
      opts.onConnection(socket);
    },
  );
  // Scanners and clients with the wrong trust store fail here; not worth more than debug.
  server.on("tlsClientError", (err, socket) =>
    opts.log.debug(
      { err: err.message, listener: opts.name, remote: socket.remoteAddress },
      "TLS handshake failed",
    ),
  );
  return start(server, opts, "tls");
}
