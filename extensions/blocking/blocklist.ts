/**
 * Blocklists: stored per account, cached in memory, matched against the JIDs of stanzas.
 * References: XEP-0191 §3.2-§3.5 (what is stored; the block applies across sessions until
 * unblocked), §6 (JID matching, as XEP-0016 §2.1), RFC 7622 (JIDs are compared normalised).
 *
 * The routing policy checks every stanza to or from an account, so lists are kept in memory:
 * always while the account has sessions, and for up to `maxIdle` accounts without sessions
 * (stanzas to offline accounts), least recently used first out. This module is the only writer,
 * so the cache is updated with each write (single node; a cluster would need invalidation).
 */
import type { Jid } from "../../server/jid.ts";
import type { Db, Migration } from "../../server/storage/db.ts";

export const blockingMigrations: readonly Migration[] = [
  {
    id: "001-blocklist",
    sql: `
      create table blocklist (
        username text not null references accounts (username) on delete cascade,
        -- A normalised JID (RFC 7622): user@domain/resource, user@domain, domain/resource or domain.
        jid text not null,
        created_at timestamptz not null default now(),
        primary key (username, jid)
      );
    `,
  },
];

/**
 * XEP-0191 §6: does an item of the list match `peer`? Items are user@domain/resource (only that
 * resource), user@domain (any resource), domain/resource (only that resource) and domain (the
 * domain itself, anyone at it, and its subdomains).
 */
export function matches(items: ReadonlySet<string>, peer: Jid): boolean {
  if (items.size === 0) return false;
  // peer.full covers user@domain/resource and domain/resource; peer.bare covers user@domain.
  if (items.has(peer.full) || items.has(peer.bare)) return true;
  for (let domain = peer.domain; ; ) {
    if (items.has(domain)) return true;
    const dot = domain.indexOf(".");
    if (dot < 0) return false;
    domain = domain.slice(dot + 1);
  }
}

export class Blocklists {
  private readonly db: Db;
  private readonly maxIdle: number;
  /** Lists of accounts with sessions: kept until the last session ends. */
  private readonly pinned = new Map<string, Promise<Set<string>>>();
  /** Lists of accounts without sessions; Map order is recency (least recent first). */
  private readonly idle = new Map<string, Promise<Set<string>>>();
  /** Accounts with sessions (a count per account). */
  private readonly online = new Map<string, number>();
  /** Pending writes per account: one at a time, so memory and database agree. */
  private readonly writes = new Map<string, Promise<unknown>>();

  constructor(db: Db, opts: { maxIdle: number }) {
    this.db = db;
    this.maxIdle = opts.maxIdle;
  }

  /** A session of the account was bound: keep its list in memory while it has any. */
  pin(username: string): void {
    this.online.set(username, (this.online.get(username) ?? 0) + 1);
    const entry = this.idle.get(username);
    if (entry) {
      this.idle.delete(username);
      this.pinned.set(username, entry);
    }
  }

  /** A session ended: after the last one the list may be evicted like any other. */
  unpin(username: string): void {
    const n = (this.online.get(username) ?? 1) - 1;
    if (n > 0) {
      this.online.set(username, n);
      return;
    }
    this.online.delete(username);
    const entry = this.pinned.get(username);
    if (entry) {
      this.pinned.delete(username);
      this.idle.set(username, entry);
      this.evict();
    }
  }

  /** The user's list, from memory or loaded once (concurrent callers share the load). */
  list(username: string): Promise<Set<string>> {
    const pinned = this.pinned.get(username);
    if (pinned) return pinned;
    let entry = this.idle.get(username);
    if (entry) {
      this.idle.delete(username);
      this.idle.set(username, entry);
      return entry;
    }
    entry = (async () => {
      const rows = await this.db<{ jid: string }[]>`
        select jid from blocklist where username = ${username}::text order by created_at, jid`;
      return new Set(rows.map((r) => r.jid));
    })();
    const cache = this.online.has(username) ? this.pinned : this.idle;
    cache.set(username, entry);
    entry.catch(() => {
      // A failed load is not cached: the next stanza tries again.
      if (this.pinned.get(username) === entry) this.pinned.delete(username);
      if (this.idle.get(username) === entry) this.idle.delete(username);
    });
    this.evict();
    return entry;
  }

  async isBlocked(username: string, peer: Jid): Promise<boolean> {
    return matches(await this.list(username), peer);
  }

  /** Adds JIDs; returns the ones that were not blocked before. */
  block(username: string, jids: readonly string[]): Promise<string[]> {
    return this.serial(username, () => this.add(username, jids));
  }

  /** Removes JIDs, or every JID when `jids` is undefined; returns the ones that were blocked. */
  unblock(username: string, jids: readonly string[] | undefined): Promise<string[]> {
    return this.serial(username, () => this.remove(username, jids));
  }

  private serial<T>(username: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.writes.get(username) ?? Promise.resolve()).then(fn);
    const tail = result.catch(() => {});
    this.writes.set(username, tail);
    void tail.then(() => {
      if (this.writes.get(username) === tail) this.writes.delete(username);
    });
    return result;
  }

  private async add(username: string, jids: readonly string[]): Promise<string[]> {
    const items = await this.list(username);
    const added = [...new Set(jids)].filter((j) => !items.has(j));
    if (added.length > 0) {
      await this.db`
        insert into blocklist ${this.db(added.map((jid) => ({ username, jid })))}
        on conflict do nothing`;
      for (const jid of added) items.add(jid);
    }
    return added;
  }

  private async remove(username: string, jids: readonly string[] | undefined): Promise<string[]> {
    const items = await this.list(username);
    const removed = jids === undefined ? [...items] : [...new Set(jids)].filter((j) => items.has(j));
    if (jids === undefined) {
      await this.db`delete from blocklist where username = ${username}::text`;
    } else if (removed.length > 0) {
      await this.db`delete from blocklist where username = ${username}::text and jid in ${this.db(removed)}`;
    }
    for (const jid of removed) items.delete(jid);
    return removed;
  }

  private evict(): void {
    for (const username of this.idle.keys()) {
      if (this.idle.size <= this.maxIdle) return;
      this.idle.delete(username);
    }
  }
}
