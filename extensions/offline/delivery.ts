/**
 * Offline delivery: storing messages for users who cannot take them, and handing them over, in
 * order, when a resource becomes available with a non-negative priority.
 * References: XEP-0160 §2 (store; deliver on the next non-negative available presence), RFC 6121
 * §8.5.2.2.1 / §8.5.3.2.1 (messages to an account without such a resource), RFC 6121 §4.7.2.3
 * (negative priority never receives bare-JID messages), RFC 6120 §10.1 (in-order processing),
 * XEP-0198 §4 (unacknowledged stanzas come back when a session ends).
 *
 * Ordering. Every database operation for one user runs on that user's queue, one at a time, in
 * the order it was asked for. A message that must not overtake stored ones (one arriving while a
 * flush runs, or while an available resource still has stored messages waiting) is itself stored
 * behind them, and the flush delivers it. The flush ends only when a read finds nothing and
 * nothing is queued behind it, so no message is left behind. `stored` is set the moment a store
 * is queued (not when it completes), so a later message cannot slip past an earlier one still
 * being written.
 *
 * At-least-once. A message is deleted only after the session took it (send returned true), one
 * batch at a time: if the broker dies between the sends and the delete, that batch is delivered
 * again on the next login (a duplicate, never a loss). If the session ends mid-flush the rest stays
 * stored. What the session took but the client never acknowledged comes back from XEP-0198 as the
 * same element; it is put back under its old sequence number, so it is delivered again before the
 * newer stored messages. Without XEP-0198 a message written to a socket that then dies is lost, as
 * any message to a client would be.
 *
 * Memory: one batch of rows at a time; per-user state only while the user has sessions or queued
 * work. Single node: a cluster needs the queue and the `stored` flag to live with the user's node.
 */
import type { Element } from "ltx";
import { type Jid, tryParseJid } from "../../server/jid.ts";
import type { LocalSession, ModuleApi, StanzaEvent } from "../../server/modules/module.ts";
import { StanzaError, type StanzaErrorCondition } from "../../server/xml/errors.ts";
import { disposition, isStorableType, parseStored, stampedXml } from "./stanzas.ts";
import type { OfflineStore, Quota } from "./store.ts";

export interface DeliverySettings {
  readonly quota: Quota;
  readonly batchSize: number;
  /** The error a sender gets when the recipient's storage is full. */
  readonly quotaError: StanzaErrorCondition;
}

/** Optional: the blocking module's verdict, so stored messages from a since-blocked JID are not delivered. */
export interface BlockingCheck {
  isBlocked(userBare: string, peer: Jid): boolean | Promise<boolean>;
}

interface UserState {
  /** The tail of this user's queue of database work. */
  tail: Promise<unknown>;
  /** Operations queued and not yet started. */
  waiting: number;
  /** Operations started and not yet finished. */
  running: number;
  /** The session a flush is delivering to. */
  flushing: LocalSession | undefined;
  /** Messages may be stored (true), none are (false), or we do not know (undefined: ask the database). */
  stored: boolean | undefined;
}

type BatchOutcome = "more" | "done" | "aborted";

/** RFC 6121 §8.5.2.1.1 / XEP-0160 §2: a resource that takes bare-JID messages. */
function eligible(session: LocalSession): boolean {
  return session.available && session.priority >= 0;
}

export class OfflineDelivery {
  private readonly api: ModuleApi;
  private readonly store: OfflineStore;
  private readonly settings: DeliverySettings;
  private readonly blocking: () => BlockingCheck | undefined;
  private readonly users = new Map<string, UserState>();
  /** Stanzas a flush handed to a session, with the row they came from (see "At-least-once"). */
  private readonly delivered = new WeakMap<Element, { bare: string; seq: number }>();
  /** Messages the bare-JID hook already refused, so the router's "offline" step does not ask again. */
  private readonly refused = new WeakSet<Element>();

  constructor(
    api: ModuleApi,
    store: OfflineStore,
    settings: DeliverySettings,
    blocking: () => BlockingCheck | undefined,
  ) {
    this.api = api;
    this.store = store;
    this.settings = settings;
    this.blocking = blocking;
  }

  /**
   * Hook on messages to an account's bare JID (and on full JIDs that fell back to it). Takes the
   * message when it must wait behind stored ones, or when no resource can take it now.
   */
  async onBare(event: StanzaEvent): Promise<boolean | undefined> {
    if (!isStorableType(event.stanza)) return undefined;
    const bare = event.to.bare;
    const candidates = this.api.sessionsOf(bare).filter(eligible);
    let user = this.users.get(bare);
    if (candidates.length === 0) {
      // Decided here rather than in the router's "offline" step, so that a resource becoming
      // available between this hook and the router's choice cannot receive a message before
      // the stored ones.
      return this.keep(event, false);
    }
    if (!user?.flushing) {
      if (user?.stored === false) return undefined;
      user ??= this.user(bare);
      this.kick(bare, user);
    }
    return user.flushing ? this.keep(event, true) : undefined;
  }

  /** Hook on messages to a full JID: only the resource being flushed to has to wait. */
  async onFull(event: StanzaEvent): Promise<boolean | undefined> {
    if (!isStorableType(event.stanza)) return undefined;
    const bare = event.to.bare;
    const target = this.api.sessionsOf(bare).find((s) => s.jid.resource === event.to.resource);
    // No such resource: the router falls back to the bare JID (RFC 6121 §8.5.3.2.1), see onBare.
    if (!target || !eligible(target)) return undefined;
    let user = this.users.get(bare);
    if (!user?.flushing && user?.stored !== false) {
      user ??= this.user(bare);
      this.kick(bare, user);
    }
    return user?.flushing === target ? this.keep(event, true) : undefined;
  }

  /** The router's "offline" step (RFC 6121 §8.5.2.2.1): nobody available took the message. */
  async onOffline(event: StanzaEvent): Promise<boolean | undefined> {
    if (!isStorableType(event.stanza) || this.refused.has(event.stanza)) return undefined;
    return this.keep(event, false);
  }

  /** A session sent presence, or its initial presence was routed: it may now take stored messages. */
  sessionChanged(session: LocalSession): void {
    if (!eligible(session)) return;
    const bare = session.jid.bare;
    const user = this.users.get(bare) ?? this.user(bare);
    this.kick(bare, user);
  }

  /** Resolves once no database work is queued or running (module stop, before storage closes). */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.users.values()].filter((u) => u.waiting > 0 || u.running > 0 || u.flushing);
      if (busy.length === 0) return;
      await Promise.all(busy.map((u) => u.tail));
      // A flush schedules its next step after the previous one: give it a turn to appear.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** A session ended: a flush to it stops at its next step; forget idle state. */
  sessionEnded(session: LocalSession): void {
    const user = this.users.get(session.jid.bare);
    if (user) this.forgetIfIdle(session.jid.bare, user);
  }

  /** Stores a message, or refuses it (throws) when it may not or cannot be stored. */
  private async keep(event: StanzaEvent, heldBack: boolean): Promise<boolean | undefined> {
    const { stanza } = event;
    const bare = event.to.bare;
    const verdict = disposition(stanza, bare);
    if (verdict === "drop") return true;
    if (verdict === "refuse") {
      this.refused.add(stanza);
      return undefined; // the router answers service-unavailable
    }
    const user = this.user(bare);
    const origin = this.delivered.get(stanza);
    const trusted = event.origin.kind === "internal";
    const xml = stampedXml(stanza, this.api.domain, trusted, new Date());
    const username = event.to.local;
    // Set before the write completes: a message arriving meanwhile must queue behind this one.
    user.stored = true;
    const outcome = await this.run(bare, user, () =>
      origin && origin.bare === bare && trusted
        ? this.store.restore(username, origin.seq, xml)
        : // Messages held back behind a running flush are for a user who is online and reading:
          // they do not count against the quota.
          this.store.append(username, xml, heldBack ? undefined : this.settings.quota),
    );
    if (outcome === "no-account") {
      this.refused.add(stanza);
      return undefined; // RFC 6121 §8.5.1: no such account, the router answers service-unavailable
    }
    if (outcome === "full") {
      // XEP-0160 §2: a full queue is refused, never dropped silently.
      throw new StanzaError(this.settings.quotaError, "the recipient's offline storage is full");
    }
    // A resource may have become available while we were writing. The state may have been
    // forgotten and made anew meanwhile: always work on the current one.
    const current = this.users.get(bare) ?? (this.hasCandidate(bare) ? this.user(bare) : undefined);
    if (current) this.kick(bare, current);
    return true;
  }

  private hasCandidate(bare: string): boolean {
    return this.api.sessionsOf(bare).some(eligible);
  }

  private user(bare: string): UserState {
    let user = this.users.get(bare);
    if (!user) {
      user = { tail: Promise.resolve(), waiting: 0, running: 0, flushing: undefined, stored: undefined };
      this.users.set(bare, user);
    }
    return user;
  }

  /** Runs fn on the user's queue, after everything queued before it. */
  private run<T>(bare: string, user: UserState, fn: () => Promise<T>): Promise<T> {
    user.waiting++;
    const result = user.tail.then(async () => {
      user.waiting--;
      user.running++;
      try {
        return await fn();
      } finally {
        user.running--;
        this.forgetIfIdle(bare, user);
      }
    });
    user.tail = result.catch(() => {});
    return result;
  }

  private forgetIfIdle(bare: string, user: UserState): void {
    if (user.flushing || user.waiting > 0 || user.running > 0) return;
    if (this.api.sessionsOf(bare).length > 0) return;
    // Forgetting `stored` is safe: unknown means "ask the database" at the next login.
    if (this.users.get(bare) === user) this.users.delete(bare);
  }

  /** Starts a flush if messages may be stored and a resource can take them. */
  private kick(bare: string, user: UserState): void {
    if (user.flushing || user.stored === false) return;
    const candidates = this.api.sessionsOf(bare).filter(eligible);
    if (candidates.length === 0) return;
    // RFC 6121 §8.5.2.1.1: the highest priority takes bare-JID messages.
    const target = candidates.reduce((best, s) => (s.priority > best.priority ? s : best));
    user.flushing = target;
    void this.flush(bare, user, target);
  }

  private async flush(bare: string, user: UserState, session: LocalSession): Promise<void> {
    let outcome: BatchOutcome = "more";
    let failed = false;
    try {
      while (outcome === "more") outcome = await this.run(bare, user, () => this.batch(bare, user, session));
    } catch (err) {
      // Messages stay stored; the next presence or message for this user tries again (not at
      // once: a failing database would make that a busy loop).
      this.api.log.error({ err, user: bare }, "offline delivery failed; messages stay stored");
      failed = true;
    }
    if (outcome === "done") return;
    if (user.flushing === session) user.flushing = undefined;
    // The session went away or became unavailable: another resource may take the rest.
    if (!failed && this.api.sessionsOf(bare).some((s) => s !== session && eligible(s))) this.kick(bare, user);
    this.forgetIfIdle(bare, user);
  }

  /** One step of a flush, on the user's queue: read a batch, hand it over, delete what was taken. */
  private async batch(bare: string, user: UserState, session: LocalSession): Promise<BatchOutcome> {
    const alive = () => eligible(session) && this.api.sessionsOf(bare).includes(session);
    if (!alive()) return "aborted";
    const username = session.jid.local;
    const rows = await this.store.oldest(username, this.settings.batchSize);
    if (rows.length === 0) {
      // Something queued behind us may be a store: read again after it.
      if (user.waiting > 0) return "more";
      user.flushing = undefined;
      user.stored = false;
      return "done";
    }
    const blocking = this.blocking();
    let handled = 0;
    for (const row of rows) {
      if (!alive()) break;
      let stanza: Element;
      try {
        stanza = parseStored(row.stanza);
      } catch (err) {
        // Cannot happen for rows we wrote; kept, it would block the queue for ever.
        this.api.log.error({ err, user: bare, seq: row.seq }, "unreadable offline message deleted");
        handled++;
        continue;
      }
      const from = tryParseJid(stanza.attrs.from);
      // XEP-0191 §3.3: nothing from a blocked JID is delivered, stored before the block or not.
      if (from && blocking && (await blocking.isBlocked(bare, from))) {
        handled++;
        continue;
      }
      if (!session.send(stanza)) break;
      this.delivered.set(stanza, { bare, seq: row.seq });
      handled++;
    }
    if (handled > 0) await this.store.remove(username, rows[0]!.seq, rows[handled - 1]!.seq);
    return handled === rows.length ? "more" : "aborted";
  }
}
