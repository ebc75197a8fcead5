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
 * - prov_audit: append-only; a trigger refuses UPDATE, DELETE and TRUNCATE.
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
];
