/**
 * Per-remote-domain metrics for s2s links (links by state, stanzas in/out, failures), with the
 * number of distinct domain labels bounded: remote domains come from the outside (a user may
 * address any domain, any peer may claim one), so past a cap they are counted as "other".
 */
import type { Metrics } from "../observability/metrics.ts";

const MAX_REMOTE_LABELS = 500;

export type Direction = "in" | "out";

/** Why a link failed, as a metric label (the log line carries the details). */
export type FailureKind =
  | "no-route"
  | "unreachable"
  | "timeout"
  | "tls"
  | "no-tls"
  | "certificate"
  | "sasl"
  | "dialback-invalid"
  | "dialback-error"
  | "stream-error"
  | "closed"
  | "policy"
  | "queue-full";

export class S2sMetrics {
  private readonly metrics: Metrics;
  private readonly labels = new Set<string>();

  constructor(metrics: Metrics) {
    this.metrics = metrics;
  }

  /** The label for a remote domain: itself while under the cap, then "other". */
  remote(domain: string | undefined): string {
    if (!domain) return "-";
    if (this.labels.has(domain)) return domain;
    if (this.labels.size >= MAX_REMOTE_LABELS) return "other";
    this.labels.add(domain);
    return domain;
  }

  stanza(domain: string, direction: Direction): void {
    this.metrics.s2sStanzas.inc({ remote: this.remote(domain), direction });
  }

  failure(domain: string, reason: FailureKind): void {
    this.metrics.s2sFailures.inc({ remote: this.remote(domain), reason });
  }

  /** A gauge entry that moves with one link: set(state) leaves the old state, clear() leaves all. */
  tracker(direction: Direction): LinkStateTracker {
    return new LinkStateTracker(this, this.metrics, direction);
  }
}

export class LinkStateTracker {
  private current: { remote: string; state: string } | undefined;
  private readonly owner: S2sMetrics;
  private readonly metrics: Metrics;
  private readonly direction: Direction;

  constructor(owner: S2sMetrics, metrics: Metrics, direction: Direction) {
    this.owner = owner;
    this.metrics = metrics;
    this.direction = direction;
  }

  set(domain: string | undefined, state: string): void {
    const remote = this.owner.remote(domain);
    if (this.current?.remote === remote && this.current.state === state) return;
    this.clear();
    this.current = { remote, state };
    this.metrics.s2sLinks.inc({ remote, direction: this.direction, state });
  }

  clear(): void {
    if (!this.current) return;
    this.metrics.s2sLinks.dec({ ...this.current, direction: this.direction });
    this.current = undefined;
  }
}
