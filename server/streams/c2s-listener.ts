/**
 * Accepts client connections on the STARTTLS port and the direct-TLS port (XEP-0368) and hands
 * them to C2sStream, enforcing limits on connections that have not authenticated yet.
 * References: RFC 6120 §4.9.3.14 (policy-violation), §4.9.3.17 (resource-constraint), §13.12
 * (denial of service), XEP-0368 §3 (direct TLS, ALPN "xmpp-client").
 */
import { randomBytes } from "node:crypto";
import type { Server, Socket } from "node:net";
import type { Logger } from "../observability/logger.ts";
import { NS } from "../xml/namespaces.ts";
import { type C2sDeps, C2sStream } from "./c2s.ts";
import { type ConnectionLimits, XmlConnection } from "./xml-connection.ts";

export interface C2sAcceptor {
  /** Takes a freshly accepted socket (plain for STARTTLS, already TLS for direct TLS). */
  accept(socket: Socket, secure: boolean): void;
  /** Every open client stream (for shutdown). */
  readonly streams: ReadonlySet<C2sStream>;
  readonly servers: Server[];
}

export interface C2sAcceptorOptions {
  readonly deps: C2sDeps;
  readonly limits: ConnectionLimits;
  readonly maxUnauthenticated: number;
  readonly maxUnauthenticatedPerIp: number;
  readonly log: Logger;
}

export function createC2sAcceptor(opts: C2sAcceptorOptions): C2sAcceptor {
  const streams = new Set<C2sStream>();
  const pendingByIp = new Map<string, number>();
  let pending = 0;

  const release = (ip: string) => {
    pending--;
    const n = (pendingByIp.get(ip) ?? 1) - 1;
    if (n <= 0) pendingByIp.delete(ip);
    else pendingByIp.set(ip, n);
  };

  return {
    streams,
    servers: [],
    accept(socket, secure) {
      socket.setNoDelay(true);
      socket.pause();
      const ip = socket.remoteAddress ?? "unknown";
      const id = randomBytes(6).toString("hex");
      const conn = new XmlConnection(socket, {
        id,
        secure,
        contentNamespace: NS.client,
        limits: opts.limits,
        log: opts.log.child({ conn: id }),
        metrics: opts.deps.metrics,
      });
      const fromIp = pendingByIp.get(ip) ?? 0;
      if (pending >= opts.maxUnauthenticated || fromIp >= opts.maxUnauthenticatedPerIp) {
        const global = pending >= opts.maxUnauthenticated;
        opts.log.warn({ remote: ip, pending, fromIp }, "too many unauthenticated connections: refused");
        conn.start({ onHeader: () => {}, onElement: () => {}, onClosed: () => {} });
        conn.streamError(
          global ? "resource-constraint" : "policy-violation",
          global ? "the server is busy" : "too many unauthenticated connections from your address",
        );
        return;
      }
      pending++;
      pendingByIp.set(ip, fromIp + 1);
      let counted = true;
      const uncount = () => {
        if (counted) release(ip);
        counted = false;
      };
      const stream: C2sStream = new C2sStream(conn, opts.deps, {
        authenticated: uncount,
        closed: () => {
          uncount();
          streams.delete(stream);
        },
      });
      streams.add(stream);
    },
  };
}
