/**
 * What the presence handlers share: the module API, the roster service, the per-session presence
 * state, and small helpers for sending presence on behalf of local accounts.
 * References: RFC 6121 §4.2.2/§4.4.2 (presence from each available resource), §4.6.3 (directed
 * presence is tracked per session), §4.3.2 (the last unavailable presence answers probes).
 */
import { clone, Element } from "ltx";
import { z } from "zod";
import type { AccountStore } from "../../server/accounts/store.ts";
import type { Jid } from "../../server/jid.ts";
import type { LocalSession, ModuleApi } from "../../server/modules/module.ts";
import { NS } from "../../server/xml/namespaces.ts";
import type { RosterService } from "../roster/roster.ts";
import { TokenBucket } from "./flood.ts";

export const presenceConfigSchema = z
  .object({
    /**
     * Inbound subscription requests one account may have waiting for an answer. Beyond it new
     * requests are refused with resource-constraint (the waiting ones are kept).
     */
    max_pending_requests: z.number().int().min(1).default(100),
    /** Broadcast presences one session may send at once ... */
    broadcast_burst: z.number().int().min(1).default(10),
    /** ... and per second on average; the excess is dropped, the latest state still goes out. */
    broadcast_rate: z.number().positive().default(1),
    /** Seconds between two "presence flood" log lines for one session. */
    flood_log_interval: z.number().positive().default(60),
    /** Directed-presence recipients remembered per session (for their unavailable, §4.6.3). */
    max_directed: z.number().int().min(0).default(1000),
  })
  .strict();
export type PresenceConfig = z.infer<typeof presenceConfigSchema>;

/** Presence bookkeeping for one client session. */
export interface SessionPresence {
  /** Initial presence sent and no unavailable since (RFC 6121 §4.2, §4.5). */
  online: boolean;
  /** RFC 6121 §4.6.3: where directed available presence went while online. */
  readonly directed: Set<string>;
  readonly bucket: TokenBucket;
  /** A broadcast of the latest presence, due when the flood limit allows it again. */
  trailing: NodeJS.Timeout | undefined;
  dropped: number;
  lastFloodLog: number;
}

/** RFC 6121 §4.3.2: the last unavailable presence of accounts now offline, newest last, bounded. */
export class LastUnavailable {
  private readonly map = new Map<string, Element>();
  constructor(private readonly max: number) {}

  set(bare: string, presence: Element, domain: string): void {
    const stored = clone(presence);
    delete stored.attrs.to;
    // XEP-0203: when it was sent.
    stored.c("delay", { xmlns: NS.delay, from: domain, stamp: new Date().toISOString() });
    this.map.delete(bare);
    this.map.set(bare, stored);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  get(bare: string): Element | undefined {
    return this.map.get(bare);
  }

  delete(bare: string): void {
    this.map.delete(bare);
  }
}

export interface PresenceContext {
  readonly api: ModuleApi;
  readonly roster: RosterService;
  readonly accounts: AccountStore;
  readonly config: PresenceConfig;
  readonly lastUnavailable: LastUnavailable;
  stateOf(session: LocalSession): SessionPresence;
  /** Keeps a background task alive until module stop, logging its failure. */
  track(task: Promise<unknown>, what: string): void;
}

export function newSessionPresence(config: PresenceConfig): SessionPresence {
  return {
    online: false,
    directed: new Set(),
    bucket: new TokenBucket(config.broadcast_burst, config.broadcast_rate),
    trailing: undefined,
    dropped: 0,
    lastFloodLog: 0,
  };
}

/** A local account's JID (this domain, with a localpart). */
export function isLocalAccount(api: ModuleApi, jid: Jid): boolean {
  return jid.domain === api.domain && jid.local !== "";
}

/** A copy of `presence` addressed to `to` (the original goes on unchanged). */
export function addressed(presence: Element, to: string, from?: string): Element {
  const copy = clone(presence);
  copy.attrs.to = to;
  if (from) copy.attrs.from = from;
  return copy;
}

export function presence(attrs: Record<string, string>): Element {
  return new Element("presence", attrs);
}

/** Available resources of a local account with their last broadcast presence. */
export function availableSessions(api: ModuleApi, bare: string, except?: LocalSession): LocalSession[] {
  return api.sessionsOf(bare).filter((s) => s !== except && s.available && s.presence !== undefined);
}

/** Hands a stanza to every available resource of a local account (RFC 6121 §3.1.3, §3.1.6). */
export function deliverToAvailable(api: ModuleApi, bare: string, stanza: Element): number {
  let reached = 0;
  for (const session of api.sessionsOf(bare)) {
    if (session.available && session.send(stanza)) reached++;
  }
  return reached;
}

/** RFC 6121 §3.1.5, §4.3.2: the current presence of each available resource, to `to`. */
export function sendCurrentPresence(api: ModuleApi, bare: string, to: string): void {
  for (const session of availableSessions(api, bare)) {
    api.send(addressed(session.presence!, to, session.jid.full));
  }
}

/** RFC 6121 §3.2.2, §3.3.3: unavailable from each available resource, to `to`. */
export function sendUnavailable(api: ModuleApi, bare: string, to: string): void {
  for (const session of api.sessionsOf(bare)) {
    if (session.available) api.send(presence({ type: "unavailable", from: session.jid.full, to }));
  }
}
