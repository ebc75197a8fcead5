/**
 * The register module's schema (module name "register"): API keys, the accounts made with each,
 * the nonces seen, and the audit trail of every use.
 * References: XEP-0348 §3.1 (a manufacturer's key signs device registrations, "perhaps with a limit
 * on number of accounts"), the spec digest §8.2 (key = consumer key + secret, quota, audit).
 *
 * - api_keys.secret is kept in the clear: HMAC verification needs it (XEP-0348 §2.7). Protect the
 *   database accordingly; revoking a key is immediate.
 * - api_key_accounts: accounts created with a key. The quota counts these rows, so an account
 *   deleted later still counts (a quota is of accounts created, not of accounts alive). A row is
 *   written before the account is created and removed if creation fails, so a crash can only
 *   cost a quota slot, never leave an account that was not counted.
 * - api_key_nonces: nonces within the timestamp window (older ones are purged: a replay that old
 *   fails the timestamp check anyway).
 * - api_key_audit: one row per attempt with a key (known or not), whatever the outcome.
 */
import type { Migration } from "../../server/storage/db.ts";

export const registerMigrations: readonly Migration[] = [
  {
    id: "001-api-keys",
    sql: `
      create table api_keys (
        id text primary key,
        secret text not null,
        owner text not null,
        max_accounts integer not null check (max_accounts >= 0),
        expires_at timestamptz,
        revoked_at timestamptz,
        created_at timestamptz not null default now()
      );
      create table api_key_accounts (
        key_id text not null references api_keys (id),
        username text not null,
        created_at timestamptz not null default now(),
        primary key (key_id, username)
      );
      create table api_key_nonces (
        key_id text not null,
        nonce text not null,
        seen_at timestamptz not null default now(),
        primary key (key_id, nonce)
      );
      create index api_key_nonces_seen on api_key_nonces (seen_at);
      create table api_key_audit (
        id bigint generated always as identity primary key,
        at timestamptz not null default now(),
        key_id text,
        outcome text not null,
        username text,
        remote_address text,
        detail text
      );
      create index api_key_audit_key on api_key_audit (key_id, at);
    `,
  },
];
