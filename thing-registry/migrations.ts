/**
 * The thing registry's schema (module name "thing-registry").
 * References: XEP-0347 §3.6 (one record per bare JID, or per node of a concentrator: §3.8 makes
 * (nodeId, sourceId, cacheType) unique within the JID), §3.9 (claimed things: owner, public or
 * private), §3.15 (search by string and numeric tag values).
 *
 * - registry_things: one row per thing. `owner` is null while unclaimed; self-owned things own
 *   themselves (§3.7). `public` is true only for claimed public things: exactly the searchable
 *   ones. `claim_digest` (tags.ts tagsDigest) is set while unclaimed, so a claim is one index
 *   lookup on (claim_digest) among unclaimed rows.
 * - registry_tags: one row per tag, `name_key` upper-cased (names are case-insensitive), `name`
 *   as the thing wrote it; exactly one of str_value / num_value. The two partial indexes on
 *   (name_key, value) serve every search operator, including left-anchored masks: str_value uses
 *   the "C" collation, so LIKE 'abc%' can use the index and ordering is by code point on both
 *   engines.
 */
import type { Migration } from "../server/storage/db.ts";

export const registryMigrations: readonly Migration[] = [
  {
    id: "001-things",
    sql: `
      create table registry_things (
        id bigint generated always as identity primary key,
        jid text not null,
        node_id text not null default '',
        source_id text not null default '',
        cache_type text not null default '',
        owner text,
        public boolean not null default false,
        self_owned boolean not null default false,
        claim_digest text,
        registered_at timestamptz not null default now(),
        claimed_at timestamptz,
        updated_at timestamptz not null default now(),
        unique (jid, node_id, source_id, cache_type)
      );
      create index registry_things_unclaimed on registry_things (claim_digest) where owner is null;
      create index registry_things_owner on registry_things (owner) where owner is not null;
      create table registry_tags (
        thing_id bigint not null references registry_things (id) on delete cascade,
        name_key text not null,
        name text not null,
        str_value text collate "C",
        num_value double precision,
        check ((str_value is null) <> (num_value is null)),
        primary key (thing_id, name_key)
      );
      create index registry_tags_str on registry_tags (name_key, str_value) where str_value is not null;
      create index registry_tags_num on registry_tags (name_key, num_value) where num_value is not null;
    `,
  },
];
