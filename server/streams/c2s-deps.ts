/**
 * What a client-to-server stream is configured with and talks to: its settings, the broker's
 * services it uses, and the callbacks it makes. Kept apart from c2s.ts so the stream's code reads
 * without the wiring; c2s.ts re-exports these types.
 * References: RFC 6120 §5 (STARTTLS), §6 (SASL), XEP-0198 §5, §6 (acks, resumption limits),
 * XEP-0199 §4.1 (idle ping), RFC 6121 §4.2 (initial presence).
 */
import type { Element } from "ltx";
import type { LocalSession, PreAuthStream } from "../modules/module.ts";
import type { TlsServerSettings } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Router } from "../routing/router.ts";
import type { SessionDirectory } from "../routing/sessions.ts";
import type { SaslContext, SaslMechanismFactory } from "../sasl/mechanism.ts";
import type { C2sStream } from "./c2s.ts";

export interface C2sSettings {
  readonly requireTls: boolean;
  readonly authTimeoutMs: number;
  /** Quiet this long → the server pings; quiet this long again → connection-timeout. */
  readonly idleTimeoutMs: number;
  /** Whitespace keepalive period from the server (for NATs); 0 = off. */
  readonly keepaliveMs: number;
  readonly maxAuthFailures: number;
  /** XEP-0198: how long a dropped session waits to be resumed; 0 disables resumption. */
  readonly resumeTimeoutMs: number;
  /** XEP-0198: unacknowledged stanzas a session may hold before it is closed. */
  readonly maxUnacked: number;
}

export interface C2sDeps {
  readonly domain: string;
  readonly settings: C2sSettings;
  readonly router: Router;
  readonly sessions: SessionDirectory;
  readonly credentials: SaslContext["credentials"];
  /** SASL mechanisms (default: a per-process fake-credential secret; the broker passes a persistent one). */
  readonly mechanisms?: readonly SaslMechanismFactory[];
  /** Certificate and context for STARTTLS. */
  readonly tls: TlsServerSettings;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Lifecycle notifications for modules (presence, offline delivery). */
  readonly events: C2sEvents;
  /** XEP-0198 resumable sessions by stream-management id (shared by all client streams). */
  readonly resumable: Map<string, C2sStream>;
  /** Features modules offer after authentication (roster versioning, pre-approval, …). */
  readonly streamFeatures: readonly Element[];
  /** Iqs allowed before authentication (after TLS where required), e.g. XEP-0077, and their features. */
  readonly preAuth?: {
    readonly features: readonly Element[];
    /** The reply, or undefined (synchronously) when no module answers this iq before authentication. */
    handle(iq: Element, stream: PreAuthStream): Promise<Element> | undefined;
  };
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
  /** The session (or the unauthenticated stream) is over for good. */
  closed?(): void;
}
