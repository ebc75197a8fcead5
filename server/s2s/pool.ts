/**
 * Outgoing links, one per domain pair (our domain or component → remote domain), made on demand.
 * A domain that cannot be reached is retried with exponential back-off: meanwhile its stanzas
 * bounce at once with the last error, and while users keep sending to it the pool reconnects by
 * itself, so the link comes back when the peer does.
 * References: RFC 6120 §10.4 (remote domains), §8.3.3.15/16 (remote-server-not-found and
 * remote-server-timeout), XEP-0220 §2.1 (one dialback per domain pair), §2.1.2 (a stream to the
 * Authoritative Server may be reused for verification).
 */
import type { Element } from "ltx";
import type { Logger } from "../observability/logger.ts";
import { StanzaError } from "../xml/errors.ts";
import type { S2sMetrics } from "./link-metrics.ts";
import { OutLink, type OutLinkDeps } from "./stream-out.ts";
import type { VerifyOutcome } from "./verify-requests.ts";

export interface PoolOptions {
  /** Everything an OutLink needs except the pair and the events. */
  readonly link: Omit<OutLinkDeps, "local" | "remote" | "events">;
  readonly allowed: (domain: string) => boolean;
  /** The first retry comes after this; each failure doubles it up to maxRetryDelayMs. */
  readonly minRetryDelayMs?: number;
  readonly maxRetryDelayMs: number;
  /** Keep reconnecting a failing domain while stanzas were sent to it this recently. */
  readonly demandWindowMs: number;
  readonly log: Logger;
  readonly s2sMetrics: S2sMetrics;
}

interface Backoff {
  failures: number;
  retryAt: number;
  error: StanzaError;
  lastDemand: number;
  timer: NodeJS.Timeout | undefined;
}

export class S2sPool {
  private readonly opts: PoolOptions;
  private readonly links = new Map<string, OutLink>();
  private readonly backoff = new Map<string, Backoff>();
  /** When a stanza was last sent to each pair with an open link or a link being made. */
  private readonly demand = new Map<string, number>();
  private stopped = false;

  constructor(opts: PoolOptions) {
    this.opts = opts;
  }

  /** Open links (for tests and metrics). */
  get size(): number {
    return this.links.size;
  }

  /** The link for a pair, if one exists now. */
  link(local: string, remote: string): OutLink | undefined {
    return this.links.get(pairKey(local, remote));
  }

  /** Sends a stanza from `local` to `remote`, connecting if needed; failures bounce it. */
  send(stanza: Element, local: string, remote: string): void {
    if (!this.opts.allowed(remote)) {
      this.opts.s2sMetrics.failure(remote, "policy");
      this.opts.link.bounce(
        stanza,
        new StanzaError("not-allowed", `this server does not federate with ${remote}`),
      );
      return;
    }
    const key = pairKey(local, remote);
    const waiting = this.backoff.get(key);
    if (waiting) waiting.lastDemand = Date.now();
    const existing = this.links.get(key);
    if (existing?.send(stanza)) {
      this.demand.set(key, Date.now());
      return;
    }
    if (waiting && Date.now() < waiting.retryAt) {
      const seconds = Math.ceil((waiting.retryAt - Date.now()) / 1000);
      this.opts.link.bounce(
        stanza,
        new StanzaError(waiting.error.condition, `${waiting.error.text} (next attempt in ${seconds} s)`),
      );
      return;
    }
    this.demand.set(key, Date.now());
    this.open(local, remote, false).send(stanza);
  }

  /**
   * XEP-0220 §2.1.2: asks `remote` whether it issued `key` for our stream `streamId`, over our
   * (possibly new) link to it.
   */
  verify(local: string, remote: string, streamId: string, key: string): Promise<VerifyOutcome> {
    if (this.stopped) return Promise.resolve({ type: "error", condition: "remote-server-timeout" });
    const pair = pairKey(local, remote);
    const waiting = this.backoff.get(pair);
    if (waiting && Date.now() < waiting.retryAt && !this.links.has(pair)) {
      // XEP-0220 §2.5: the Authoritative Server cannot be reached.
      return Promise.resolve({ type: "error", condition: "remote-connection-failed" });
    }
    const link = this.links.get(pair) ?? this.open(local, remote, false);
    return link.verify(streamId, key);
  }

  /** Closes every link (broker shutdown); queued stanzas bounce. */
  stop(): void {
    this.stopped = true;
    for (const entry of this.backoff.values()) if (entry.timer) clearTimeout(entry.timer);
    this.backoff.clear();
    this.demand.clear();
    for (const link of [...this.links.values()]) {
      link.close(
        "the server is stopping",
        new StanzaError("remote-server-timeout", "the server is stopping"),
      );
    }
  }

  private open(local: string, remote: string, background: boolean): OutLink {
    const key = pairKey(local, remote);
    const link = new OutLink({
      ...this.opts.link,
      local,
      remote,
      background,
      events: {
        ready: () => {
          const entry = this.backoff.get(key);
          if (entry?.timer) clearTimeout(entry.timer);
          this.backoff.delete(key);
        },
        ended: (ended, info) => {
          if (this.links.get(key) === ended) this.links.delete(key);
          const demanded = this.demand.get(key) ?? 0;
          this.demand.delete(key);
          // No route (no route table entry, no DNS answer) is not worth retrying on our own.
          const retry = info.kind !== "no-route";
          if (info.error && !this.stopped) this.failed(key, local, remote, info.error, retry, demanded);
        },
      },
    });
    this.links.set(key, link);
    link.start();
    return link;
  }

  private failed(
    key: string,
    local: string,
    remote: string,
    error: StanzaError,
    retry: boolean,
    demanded: number,
  ): void {
    const now = Date.now();
    const previous = this.backoff.get(key);
    if (previous?.timer) clearTimeout(previous.timer);
    const failures = (previous?.failures ?? 0) + 1;
    const min = this.opts.minRetryDelayMs ?? 1000;
    const delay = Math.min(this.opts.maxRetryDelayMs, min * 2 ** (failures - 1));
    const entry: Backoff = {
      failures,
      retryAt: now + delay,
      error,
      // A link opened only to verify a dialback key is nobody's demand: no retries for it alone.
      lastDemand: Math.max(previous?.lastDemand ?? 0, demanded),
      timer: undefined,
    };
    this.backoff.set(key, entry);
    this.opts.log.info(
      { local, remote, failures, retryInMs: delay, reason: error.text },
      "s2s domain unreachable: backing off",
    );
    if (!retry) {
      // Forget the domain once nobody has wanted it for a while (the map must not grow forever).
      entry.timer = setTimeout(() => {
        if (this.backoff.get(key) === entry) this.backoff.delete(key);
      }, delay + this.opts.demandWindowMs);
      entry.timer.unref();
      return;
    }
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      // Reconnect by ourselves only while someone still wants to reach the domain.
      if (this.stopped || this.links.has(key) || Date.now() - entry.lastDemand > this.opts.demandWindowMs) {
        if (!this.links.has(key) && this.backoff.get(key) === entry) this.backoff.delete(key);
        return;
      }
      this.open(local, remote, true);
    }, delay);
    entry.timer.unref();
  }
}

function pairKey(local: string, remote: string): string {
  return `${local} ${remote}`;
}
