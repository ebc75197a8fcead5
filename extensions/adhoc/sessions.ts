/**
 * Ad-hoc command sessions: who started them, where they are, when they lapse.
 * A session belongs to one requester full JID and one command node; it ends on completion, cancel
 * or inactivity, and its id is remembered for a while afterwards so a late request is told the
 * session expired rather than that the id is unknown.
 * References: XEP-0050 §3.3 (session lifetime: one requester/responder pair, ids unique and not
 * reused), §4.4 (bad-sessionid, session-expired).
 */
import { randomBytes } from "node:crypto";
import type { Jid } from "../../server/jid.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { commandError } from "./errors.ts";

export interface CommandSession {
  readonly id: string;
  readonly node: string;
  /** The full JID that started the session: nobody else may continue it (XEP-0050 §3.3). */
  readonly owner: Jid;
  /** XEP-0050 §3.5: the first language of a session applies to all of it. */
  readonly lang: string | undefined;
  readonly state: Map<string, unknown>;
  /** The stage whose form the requester has in front of it (0 = none yet). */
  stage: number;
  /** Actions the last stage offered (XEP-0050 §3.4), and what "execute" stands for there. */
  allowed: readonly ("prev" | "next" | "complete")[];
  executeMeans: "prev" | "next" | "complete" | undefined;
  /** True while a request on this session runs: a second one in parallel is refused. */
  busy: boolean;
  expiresAt: number;
}

export interface SessionLimits {
  /** Inactivity after which a session lapses. */
  readonly ttlMs: number;
  /** Open sessions per requester (bare JID); starting one more ends that requester's oldest. */
  readonly maxPerJid: number;
  /** Open sessions in all; beyond it new sessions are refused (resource-constraint). */
  readonly maxTotal: number;
  /** Ended session ids kept to answer session-expired; the oldest are forgotten first. */
  readonly maxEnded: number;
}

export class CommandSessions {
  private readonly open = new Map<string, CommandSession>();
  /** Ended sessions: id -> owner full JID (so only the owner learns it expired). */
  private readonly ended = new Map<string, string>();
  private readonly limits: SessionLimits;
  private readonly now: () => number;

  constructor(limits: SessionLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
  }

  get size(): number {
    return this.open.size;
  }

  start(owner: Jid, node: string, lang: string | undefined): CommandSession {
    this.sweep();
    const mine = [...this.open.values()].filter((s) => s.owner.bare === owner.bare);
    // Clients often close a command dialog without cancelling: the oldest session gives way.
    for (const stale of mine.slice(0, Math.max(0, mine.length - this.limits.maxPerJid + 1))) {
      this.end(stale.id);
    }
    if (this.open.size >= this.limits.maxTotal) {
      throw new StanzaError("resource-constraint", "too many command sessions are open; try again later");
    }
    const session: CommandSession = {
      // XEP-0050 §3.3: unique, never reused; unguessable, so an id is no capability leak either.
      id: randomBytes(16).toString("base64url"),
      node,
      owner,
      lang,
      state: new Map(),
      stage: 0,
      allowed: [],
      executeMeans: undefined,
      busy: false,
      expiresAt: this.now() + this.limits.ttlMs,
    };
    this.open.set(session.id, session);
    return session;
  }

  /**
   * The session `id` for a request from `requester` on `node`. XEP-0050 §4.4: an id that is not
   * this requester's open session on this node is bad-sessionid; one that ended is
   * session-expired. Another requester's id looks unknown, so nothing leaks about it.
   */
  resume(id: string, requester: Jid, node: string): CommandSession {
    const found = this.open.get(id);
    const mine = found?.owner.equals(requester) ? found : undefined;
    if (mine && mine.expiresAt <= this.now() && !mine.busy) this.end(id);
    const live = mine && this.open.has(id) ? mine : undefined;
    if (live && live.node === node) {
      live.expiresAt = this.now() + this.limits.ttlMs;
      return live;
    }
    if (!live && this.ended.get(id) === requester.full) {
      throw commandError("session-expired", "this command session has ended; start the command again");
    }
    throw commandError("bad-sessionid", "no such command session for you on this node");
  }

  /** Ends a session (completed, canceled, timed out); its id then answers session-expired. */
  end(id: string): void {
    const session = this.open.get(id);
    if (!session) return;
    this.open.delete(id);
    this.ended.set(id, session.owner.full);
    for (const oldest of this.ended.keys()) {
      if (this.ended.size <= this.limits.maxEnded) break;
      this.ended.delete(oldest);
    }
  }

  /** Ends every session whose time is up. */
  sweep(): void {
    const now = this.now();
    for (const session of [...this.open.values()]) {
      if (session.expiresAt <= now && !session.busy) this.end(session.id);
    }
  }
}
