/**
 * Offline message storage in SQL: one row per message, numbered by a per-user sequence so the
 * delivery order is exactly the order of acceptance, and one counter row per user that allocates
 * the sequence and holds the quota (messages and bytes), so checking and storing is one atomic
 * statement on both engines.
 * References: XEP-0160 §2 (store when the recipient has no available resource with a
 * non-negative priority; refuse when the queue is full), RFC 6121 §8.5.2.2.1.
 *
 * Every write is a single statement (data-modifying CTEs), never a multi-statement transaction:
 * on the embedded engine an open transaction holds the whole database.
 *
 * Both tables reference accounts(username) with ON DELETE CASCADE: deleting an account deletes
 * its stored messages, without a hook in the account store.
 */
import type { Db, Migration } from "../../server/storage/db.ts";

export const offlineMigrations: readonly Migration[] = [
  {
    id: "001-offline-messages",
    sql: `
      create table offline_counters (
        username text primary key references accounts (username) on delete cascade,
        -- The next sequence number to hand out; never reused, so order is exact.
        next_seq bigint not null,
        -- What is stored now (the quota), kept in step by every insert and delete.
        messages integer not null check (messages >= 0),
        bytes bigint not null check (bytes >= 0)
      );
      create table offline_messages (
        username text not null references accounts (username) on delete cascade,
        seq bigint not null,
        stored_at timestamptz not null default now(),
        bytes integer not null,
        -- The stanza as written on a stream (no default xmlns), with its XEP-0203 delay stamp.
        stanza text not null,
        primary key (username, seq)
      );
    `,
  },
];

export interface Quota {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

export type StoreOutcome = "stored" | "full" | "no-account";

export interface StoredRow {
  readonly seq: number;
  readonly stanza: string;
}

export class OfflineStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  /**
   * Appends a message with the next sequence number. `quota` undefined stores regardless of the
   * quota (messages held back while a flush runs: the recipient is online and reading them).
   */
  async append(username: string, xml: string, quota: Quota | undefined): Promise<StoreOutcome> {
    const bytes = Buffer.byteLength(xml);
    if (quota && (bytes > quota.maxBytes || quota.maxMessages < 1)) return "full";
    const exempt = quota === undefined;
    const maxMessages = quota?.maxMessages ?? 0;
    const maxBytes = quota?.maxBytes ?? 0;
    // The conflict branch only updates (and so only allocates a sequence number) while the quota
    // has room; no row from `counter` means no insert into offline_messages.
    const [row] = await this.db<{ accounts: number; stored: number }[]>`
      with account as (
        select username from accounts where username = ${username}::text
      ), counter as (
        insert into offline_counters as c (username, next_seq, messages, bytes)
        select username, 2, 1, ${bytes}::bigint from account
        on conflict (username) do update
          set next_seq = c.next_seq + 1, messages = c.messages + 1, bytes = c.bytes + excluded.bytes
          where ${exempt}::boolean
            or (c.messages < ${maxMessages}::int and c.bytes + excluded.bytes <= ${maxBytes}::bigint)
        returning c.next_seq - 1 as seq
      ), message as (
        insert into offline_messages (username, seq, bytes, stanza)
        select ${username}::text, seq, ${bytes}::int, ${xml}::text from counter
        returning seq
      )
      select (select count(*) from account)::int as accounts, (select count(*) from message)::int as stored`;
    if (!row || row.accounts === 0) return "no-account";
    return row.stored > 0 ? "stored" : "full";
  }

  /**
   * Puts a message back under the sequence number it had (it was delivered, never acknowledged,
   * and came back from stream management): it sorts before everything stored after it. Nothing
   * happens if that row still exists. The quota does not apply: the message was accepted once.
   */
  async restore(username: string, seq: number, xml: string): Promise<StoreOutcome> {
    const bytes = Buffer.byteLength(xml);
    const [row] = await this.db<{ accounts: number }[]>`
      with account as (
        select username from accounts where username = ${username}::text
      ), message as (
        insert into offline_messages (username, seq, bytes, stanza)
        select username, ${seq}::bigint, ${bytes}::int, ${xml}::text from account
        on conflict (username, seq) do nothing
        returning bytes
      ), counter as (
        update offline_counters
          set messages = messages + (select count(*) from message),
              bytes = bytes + (select coalesce(sum(bytes), 0) from message)
          where username = ${username}::text
      )
      select (select count(*) from account)::int as accounts`;
    return !row || row.accounts === 0 ? "no-account" : "stored";
  }

  /** The oldest `limit` messages, in order. */
  async oldest(username: string, limit: number): Promise<StoredRow[]> {
    const rows = await this.db<{ seq: string; stanza: string }[]>`
      select seq, stanza from offline_messages
      where username = ${username}::text order by seq limit ${limit}::int`;
    // bigint arrives as a string; sequence numbers stay far below 2^53.
    return rows.map((r) => ({ seq: Number(r.seq), stanza: r.stanza }));
  }

  /** Deletes the messages numbered first..last and gives their quota back. */
  async remove(username: string, first: number, last: number): Promise<void> {
    await this.db`
      with gone as (
        delete from offline_messages
        where username = ${username}::text and seq between ${first}::bigint and ${last}::bigint
        returning bytes
      )
      update offline_counters
        set messages = messages - (select count(*) from gone),
            bytes = bytes - (select coalesce(sum(bytes), 0) from gone)
        where username = ${username}::text`;
  }

  /** How many messages are stored for a user (operations, tests). */
  async count(username: string): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select count(*)::int as n from offline_messages where username = ${username}::text`;
    return row?.n ?? 0;
  }
}
