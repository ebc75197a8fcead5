/**
 * The server side of STARTTLS for incoming s2s streams, through one tls.Server that never listens:
 * each plain socket is handed to it as a "connection". Unlike a bare `new TLSSocket({isServer})`
 * (what c2s uses), a tls.Server checks the peer's certificate chain against our trust anchors and
 * sets `authorized`/`authorizationError`, which SASL EXTERNAL needs (XEP-0178).
 * References: RFC 6120 §5.4.3.3 (TLS negotiation after <proceed/>), §13.7.2 (certificate
 * validation), RFC 7590 (TLS versions: via tlsServerOptions).
 */
import type { Socket } from "node:net";
import tls from "node:tls";
import { type TlsServerSettings, tlsServerOptions } from "../net/tls.ts";

const HANDSHAKE_TIMEOUT_MS = 15_000;

export type Upgrade = (plain: Socket) => Promise<tls.TLSSocket>;

/** The same TCP connection seen from the plain socket and from the TLS socket wrapping it. */
function connectionKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

export function starttlsUpgrader(settings: TlsServerSettings): { upgrade: Upgrade; close(): void } {
  const server = tls.createServer({ ...tlsServerOptions(settings), handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  const pending = new Map<string, { resolve(s: tls.TLSSocket): void; reject(e: Error): void }>();
  server.on("secureConnection", (secure: tls.TLSSocket) => {
    const waiter = pending.get(connectionKey(secure));
    if (!waiter) {
      secure.destroy();
      return;
    }
    pending.delete(connectionKey(secure));
    // Until the stream adds its own: an unhandled 'error' would end the process.
    secure.on("error", () => {});
    waiter.resolve(secure);
  });
  server.on("tlsClientError", (err: Error, secure: tls.TLSSocket) => {
    const key = connectionKey(secure);
    const waiter = pending.get(key);
    pending.delete(key);
    secure.destroy();
    waiter?.reject(new Error(`TLS negotiation failed: ${err.message}`));
  });
  return {
    upgrade(plain) {
      return new Promise((resolve, reject) => {
        const key = connectionKey(plain);
        pending.set(key, { resolve, reject });
        plain.once("close", () => {
          if (pending.get(key)?.reject === reject) {
            pending.delete(key);
            reject(new Error("connection closed during the TLS handshake"));
          }
        });
        server.emit("connection", plain);
      });
    },
    close() {
      for (const waiter of pending.values()) waiter.reject(new Error("the server is stopping"));
      pending.clear();
    },
  };
}
