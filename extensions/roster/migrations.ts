/**
 * The roster module's schema (module name "roster").
 * References: RFC 6121 §2.1.2 (item attributes: jid, name, subscription, ask, approved, groups),
 * §3.1.3 (an inbound request is kept until the contact answers it), XEP-0237 §4 (a roster version).
 *
 * One row per (account, contact JID). A row with visible = false is not a roster item: it only
 * keeps a pending inbound request from someone the user has not added (RFC 6121 A.1 "None +
 * Pending In" without an item). Rows go with the account (on delete cascade).
 */
import type { Migration } from "../../server/storage/db.ts";

export const rosterMigrations: readonly Migration[] = [
  {
    id: "001-roster",
    sql: `
      create table roster_items (
        username text not null references accounts (username) on delete cascade,
        -- The contact's normalised JID (RFC 7622), usually bare.
        jid text not null,
        visible boolean not null default true,
        name text,
        groups text[] not null default '{}',
        subscription text not null default 'none'
          check (subscription in ('none', 'to', 'from', 'both')),
        pending_out boolean not null default false,
        pending_in boolean not null default false,
        approved boolean not null default false,
        -- The inbound request as received, redelivered at each initial presence until answered.
        request text,
        request_at timestamptz,
        primary key (username, jid)
      );
      create index roster_items_pending_in on roster_items (username) where pending_in;
      -- XEP-0237: the version is '<epoch>-<counter>'; a new epoch per account row, so a deleted and
      -- recreated account never repeats an old version string.
      create table roster_versions (
        username text primary key references accounts (username) on delete cascade,
        epoch text not null,
        counter bigint not null
      );
    `,
  },
];
