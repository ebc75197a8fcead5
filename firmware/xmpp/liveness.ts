/**
 * Keeping a session alive and noticing when it is not: a keepalive when the stream has been idle
 * (an XEP-0198 ack request when stream management is on, else a whitespace ping), a connection
 * declared dead when a requested ack does not come, and the delays between reconnection attempts.
 * References: RFC 6120 §4.6.1 (whitespace keepalives), §4.6.3 (checking a connection); XEP-0198 §5
 * (<r/> and <a/>); XEP-0198 §6 and RFC 6120 §3.3 (reconnecting: back off, with randomness).
 */
import type { StreamConnection } from "./connection.ts";
import type { ClientStreamManagement } from "./stream-management.ts";

/**
 * Exponential backoff with "equal jitter": half of the delay is fixed, half random, so a fleet of
 * devices that lost the same server does not come back in lockstep (RFC 6120 §3.3 advises it).
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return base / 2 + Math.random() * (base / 2);
}

export interface KeepaliveOptions {
  readonly conn: StreamConnection;
  /** The session's stream management, read at each tick (it may change on resumption). */
  readonly sm: () => ClientStreamManagement | undefined;
  /** Idle time before a keepalive is sent. */
  readonly idleMs: number;
  /** How long a requested ack may take before the connection is presumed dead. */
  readonly ackTimeoutMs: number;
}

/** Starts the checks; clear the returned timer when the session ends. */
export function startKeepalive(opts: KeepaliveOptions): NodeJS.Timeout {
  const { conn, idleMs, ackTimeoutMs } = opts;
  const tick = Math.max(250, Math.min(idleMs, ackTimeoutMs) / 2);
  const timer = setInterval(() => {
    const sm = opts.sm();
    const now = Date.now();
    // XEP-0198 §5: an ack that never comes means the connection is dead even if TCP says not.
    if (sm?.ackRequestedAt !== undefined && now - sm.ackRequestedAt > ackTimeoutMs) {
      conn.destroy(new Error("no acknowledgement from the server: connection presumed dead"));
      return;
    }
    if (now - conn.lastWriteAt >= idleMs) {
      if (sm) sm.requestAck(conn);
      else conn.sendWhitespace(); // RFC 6120 §4.6.1
    }
  }, tick);
  timer.unref(); // never what keeps a process alive: the socket is
  return timer;
}
