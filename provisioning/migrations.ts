/**
 * The provisioning service's schema (module name "provisioning").
 * References: XEP-0324 §3.3–§3.5 (decisions a server learns and the things whose caches it must
 * clear, also after they were offline), docs/protocol/provisioning-questions.md (rules, questions).
 *
 * - prov_rules: what an owner decided for one thing. `subject` is the caller's bare JID (scope
 *   caller), a domain (scope domain) or '' (scope everyone). The lists are JSON arrays, NULL for
 *   "all". `owner` is the owner who made the rule: rules of an earlier owner never apply (the
 *   evaluation reads only the current owner's rules).
 * - prov_questions: unanswered questions; (thing, caller, kind, digest) is unique, which is what
 *   coalesces identical questions.
 * - prov_pending_clear: things that still need a clearCache (offline, or it failed).
 * - prov_enforced: things whose owner asked the broker to refuse denied requests itself.
 * - prov_tokens (003): tokens issued for certificates whose holders answered the challenge.
 * - prov_audit: append-only; a trigger refuses UPDATE, DELETE and TRUNCATE. From 002 on, the
 *   one exception is the retention job's function prov_audit_prune(cutoff, batch): it announces
 *   its cut-off in a transaction-local setting, and the trigger lets a DELETE through only for
 *   rows older than that cut-off, and only when the cut-off is at least a day old. An ordinary
 *   `delete from prov_audit` is still refused, and even a hand-made setting can only remove what
 *   a retention of one day would. UPDATE and TRUNCATE stay refused. Plain SQL (set_config,
 *   current_setting, plpgsql), so PGlite and PostgreSQL 15 behave the same (DESIGN.md §1.5).
 */
import type { Migration } from "../server/storage/db.ts";

export const provisioningMigrations: readonly Migration[] = [
  {
    id: "001-provisioning",
    sql: `
      create table prov_rules (
        id bigint generated always as identity primary key,
        thing text not null,
        owner text not null,
        kind text not null check (kind in ('friend', 'read', 'control')),
        allow boolean not null,
        scope text not null check (scope in ('caller', 'domain', 'everyone')),
        subject text not null default '',
        nodes text,
        field_names text,
        categories text,
        parameter_names text,
        once boolean not null default false,
        origin text not null,
        created_at timestamptz not null default now()
      );
      create index prov_rules_thing on prov_rules (thing, owner, kind);
      create index prov_rules_owner on prov_rules (owner, thing);

      create table prov_questions (
        key text primary key,
        thing text not null,
        owner text not null,
        caller text not null,
        kind text not null check (kind in ('friend', 'read', 'control')),
        request text not null,
        digest text not null,
        created_at timestamptz not null default now(),
        asked_at timestamptz not null default now(),
        unique (thing, caller, kind, digest)
      );
      create index prov_questions_owner on prov_questions (owner, created_at);

      create table prov_pending_clear (
        thing text primary key,
        since timestamptz not null default now()
      );

      create table prov_enforced (
        thing text primary key,
        owner text not null,
        since timestamptz not null default now()
      );

      create table prov_audit (
        id bigint generated always as identity primary key,
        at timestamptz not null default now(),
        actor text not null,
        action text not null,
        thing text,
        owner text,
        caller text,
        detail text not null default '{}'
      );
      create index prov_audit_thing on prov_audit (thing, id);
      create index prov_audit_owner on prov_audit (owner, id);
      create index prov_audit_at on prov_audit (at);

      create function prov_audit_append_only() returns trigger language plpgsql as $$
      begin
        raise exception 'the provisioning audit trail is append-only';
      end
      $$;
      create trigger prov_audit_no_update before update or delete on prov_audit
        for each row execute function prov_audit_append_only();
      create trigger prov_audit_no_truncate before truncate on prov_audit
        for each statement execute function prov_audit_append_only();
    `,
  },
  {
    id: "002-provisioning-audit-retention",
    sql: `
      create or replace function prov_audit_append_only() returns trigger language plpgsql as $$
      declare
        cutoff timestamptz;
      begin
        if tg_op = 'DELETE' then
          cutoff := nullif(current_setting('hanse.prov_audit_prune_before', true), '')::timestamptz;
          -- Only prov_audit_prune sets this, for its own transaction; a day is the shortest retention.
          if cutoff is not null and cutoff <= now() - interval '1 day' and old.at < cutoff then
            return old;
          end if;
        end if;
        raise exception 'the provisioning audit trail is append-only';
      end
      $$;

      -- Deletes at most batch rows older than cutoff; returns how many. The setting is local to
      -- the transaction and cleared before returning, so nothing after it inherits the exception.
      create function prov_audit_prune(cutoff timestamptz, batch integer) returns bigint
      language plpgsql as $$
      declare
        deleted bigint;
      begin
        perform set_config('hanse.prov_audit_prune_before', cutoff::text, true);
        delete from prov_audit
          where id in (select id from prov_audit where at < cutoff order by at limit batch);
        get diagnostics deleted = row_count;
        perform set_config('hanse.prov_audit_prune_before', '', true);
        return deleted;
      end
      $$;
    `,
  },
  {
    // Tokens (XEP-0324 §3.1): one per certificate (its SHA-256 fingerprint), for the JID that
    // proved it holds the private key.
    id: "003-provisioning-tokens",
    sql: `
      create table prov_tokens (
        token text primary key,
        jid text not null,
        fingerprint text not null unique,
        certificate text not null,
        created_at timestamptz not null default now()
      );
      create index prov_tokens_jid on prov_tokens (jid);
    `,
  },
];
