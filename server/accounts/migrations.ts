/**
 * The accounts module's schema (module name "accounts").
 * References: RFC 5802 §3 (what a SCRAM server stores: salt, iteration count, StoredKey,
 * ServerKey, never the password), RFC 7677 (SCRAM-SHA-256 next to RFC 5802's SCRAM-SHA-1).
 *
 * One row of verifiers per account and hash, so both SCRAM-SHA-1 and SCRAM-SHA-256 can be
 * offered; deleting the account deletes them.
 */
import type { Migration } from "../storage/db.ts";

export const ACCOUNTS_MODULE = "accounts";

export const accountMigrations: readonly Migration[] = [
  {
    id: "001-accounts",
    sql: `
      create table accounts (
        -- The normalised localpart (RFC 7622 §3.3); the domain is the broker's.
        username text primary key,
        created_at timestamptz not null default now(),
        password_changed_at timestamptz not null default now()
      );
      create table account_scram (
        username text not null references accounts (username) on delete cascade,
        hash text not null check (hash in ('sha1', 'sha256')),
        salt bytea not null,
        iterations integer not null check (iterations > 0),
        stored_key bytea not null,
        server_key bytea not null,
        primary key (username, hash)
      );
    `,
  },
];
