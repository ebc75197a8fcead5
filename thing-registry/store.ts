/**
 * Registry storage: things, their tags, claims. Each change is one transaction; inside
 * `db.begin` only `tx` is used (the embedded engine serves one transaction at a time).
 * References: XEP-0347 §3.6 (a new registration replaces every tag; one record per bare JID and
 * node), §3.7 (self-owned: public and claimed at once), §3.9 (claim on exact tags; KEY deleted at
 * the claim, see also §6.5), §3.10 (remove), §3.13 (update: only the given tags; an empty string
 * deletes), §3.16 (unregister), §3.17 (disown: tags cleared, a random KEY set, unclaimed).
 */
import { randomBytes } from "node:crypto";
import type { Db } from "../server/storage/db.ts";
import type { NodeRef } from "./protocol.ts";
import { KEY, nameKey, type Tag, tagsDigest } from "./tags.ts";

export interface Thing {
  readonly id: number;
  readonly jid: string;
  readonly node: NodeRef;
  readonly owner: string | undefined;
  readonly public: boolean;
  readonly selfOwned: boolean;
}

interface ThingRow {
  id: string;
  jid: string;
  node_id: string;
  source_id: string;
  cache_type: string;
  owner: string | null;
  public: boolean;
  self_owned: boolean;
}

interface TagRow {
  thing_id: string;
  name: string;
  str_value: string | null;
  num_value: number | null;
}

function toThing(r: ThingRow): Thing {
  return {
    id: Number(r.id),
    jid: r.jid,
    node: { nodeId: r.node_id, sourceId: r.source_id, cacheType: r.cache_type },
    owner: r.owner ?? undefined,
    public: r.public,
    selfOwned: r.self_owned,
  };
}

export function toTag(r: Pick<TagRow, "name" | "str_value" | "num_value">): Tag {
  return r.str_value !== null
    ? { type: "str", name: r.name, value: r.str_value }
    : { type: "num", name: r.name, value: r.num_value! };
}

function tagRows(thingId: number, tags: readonly Tag[]) {
  return tags.map((t) => ({
    thing_id: thingId,
    name_key: nameKey(t.name),
    name: t.name,
    str_value: t.type === "str" ? t.value : null,
    num_value: t.type === "num" ? t.value : null,
  }));
}

export type RegisterOutcome =
  | { readonly kind: "registered" }
  /** XEP-0347 §3.6: already claimed; nothing was changed. */
  | { readonly kind: "claimed"; readonly owner: string; readonly public: boolean };

export type ClaimOutcome =
  | { readonly kind: "claimed"; readonly thing: Thing }
  | { readonly kind: "none" }
  /** Several unclaimed things carry exactly these tags: refuse rather than guess. */
  | { readonly kind: "ambiguous"; readonly count: number };

/** A KEY nobody can guess (XEP-0347 §3.17). */
export function randomKey(): string {
  return randomBytes(24).toString("base64url");
}

export function createRegistryStore(db: Db) {
  const byJid = (jid: string, node: NodeRef) =>
    db`jid = ${jid} and node_id = ${node.nodeId} and source_id = ${node.sourceId} and cache_type = ${node.cacheType}`;

  async function tagsOf(thingId: number): Promise<Tag[]> {
    const rows = await db<TagRow[]>`
      select thing_id, name, str_value, num_value from registry_tags
      where thing_id = ${thingId} order by name_key`;
    return rows.map(toTag);
  }

  return {
    async find(jid: string, node: NodeRef): Promise<Thing | undefined> {
      const [row] = await db<ThingRow[]>`select * from registry_things where ${byJid(jid, node)}`;
      return row ? toThing(row) : undefined;
    },

    tags: tagsOf,

    /** Tags of several things, KEY left out (search results never show it, §3.15). */
    async publicTags(ids: readonly number[]): Promise<Map<number, Tag[]>> {
      const out = new Map<number, Tag[]>(ids.map((id) => [id, []]));
      if (ids.length === 0) return out;
      const rows = await db<TagRow[]>`
        select thing_id, name, str_value, num_value from registry_tags
        where thing_id in ${db(ids as number[])} and name_key <> ${KEY}
        order by thing_id, name_key`;
      for (const r of rows) out.get(Number(r.thing_id))?.push(toTag(r));
      return out;
    },

    /** XEP-0347 §3.6–§3.8: create or replace the record, unless the thing is claimed. */
    async register(
      jid: string,
      node: NodeRef,
      tags: readonly Tag[],
      selfOwned: boolean,
    ): Promise<RegisterOutcome> {
      return db.begin(async (tx) => {
        await tx`
          insert into registry_things (jid, node_id, source_id, cache_type)
          values (${jid}, ${node.nodeId}, ${node.sourceId}, ${node.cacheType})
          on conflict (jid, node_id, source_id, cache_type) do nothing`;
        const [row] = await tx<ThingRow[]>`
          select * from registry_things
          where jid = ${jid} and node_id = ${node.nodeId} and source_id = ${node.sourceId}
            and cache_type = ${node.cacheType}
          for update`;
        const thing = toThing(row!);
        if (thing.owner !== undefined) return { kind: "claimed", owner: thing.owner, public: thing.public };
        // §3.7: a self-owned thing is public and claimed (by itself) at once.
        await tx`
          update registry_things set
            owner = ${selfOwned ? jid : null},
            public = ${selfOwned},
            self_owned = ${selfOwned},
            claim_digest = ${selfOwned ? null : tagsDigest(tags)},
            claimed_at = ${selfOwned ? new Date() : null},
            registered_at = now(),
            updated_at = now()
          where id = ${thing.id}`;
        await tx`delete from registry_tags where thing_id = ${thing.id}`;
        if (tags.length > 0) await tx`insert into registry_tags ${tx(tagRows(thing.id, tags))}`;
        return { kind: "registered" };
      });
    },

    /** XEP-0347 §3.9: the one unclaimed thing with exactly these tags becomes `owner`'s. */
    async claim(tags: readonly Tag[], owner: string, isPublic: boolean): Promise<ClaimOutcome> {
      const digest = tagsDigest(tags);
      return db.begin(async (tx) => {
        const rows = await tx<ThingRow[]>`
          select * from registry_things where claim_digest = ${digest} and owner is null
          limit 2 for update`;
        if (rows.length === 0) return { kind: "none" };
        if (rows.length > 1) return { kind: "ambiguous", count: rows.length };
        const thing = toThing(rows[0]!);
        await tx`
          update registry_things set owner = ${owner}, public = ${isPublic}, claim_digest = null,
            claimed_at = now(), updated_at = now()
          where id = ${thing.id}`;
        // §6.5: the KEY has served its purpose; nobody should find it in the database later.
        await tx`delete from registry_tags where thing_id = ${thing.id} and name_key = ${KEY}`;
        return { kind: "claimed", thing: { ...thing, owner, public: isPublic } };
      });
    },

    /**
     * XEP-0347 §3.9: "the same owner claiming again also succeeds". The KEY is gone since the
     * claim, so the owner's things are compared on the other tags.
     */
    async ownedWithTags(owner: string, tags: readonly Tag[]): Promise<Thing | undefined> {
      const rest = tags.filter((t) => nameKey(t.name) !== KEY);
      const probe = rest[0];
      if (!probe) return undefined;
      const rows = await db<ThingRow[]>`
        select th.* from registry_things th
        join registry_tags t on t.thing_id = th.id
        where th.owner = ${owner} and t.name_key = ${nameKey(probe.name)}
          and ${probe.type === "str" ? db`t.str_value = ${probe.value}` : db`t.num_value = ${probe.value}`}
        limit 50`;
      const want = tagsDigest(rest);
      for (const row of rows) {
        const stored = (await tagsOf(Number(row.id))).filter((t) => nameKey(t.name) !== KEY);
        if (tagsDigest(stored) === want) return toThing(row);
      }
      return undefined;
    },

    /** XEP-0347 §3.13–§3.14: only the given tags change; an empty string value deletes. */
    async update(thingId: number, tags: readonly Tag[], maxTags: number): Promise<"ok" | "too-many"> {
      return db
        .begin(async (tx) => {
          const deletes = tags.filter((t) => t.type === "str" && t.value === "").map((t) => nameKey(t.name));
          const upserts = tags.filter((t) => !(t.type === "str" && t.value === ""));
          if (deletes.length > 0) {
            await tx`delete from registry_tags where thing_id = ${thingId} and name_key in ${tx(deletes)}`;
          }
          if (upserts.length > 0) {
            await tx`
            insert into registry_tags ${tx(tagRows(thingId, upserts))}
            on conflict (thing_id, name_key) do update set
              name = excluded.name, str_value = excluded.str_value, num_value = excluded.num_value`;
          }
          const [count] = await tx<{ n: number }[]>`
          select count(*)::int as n from registry_tags where thing_id = ${thingId}`;
          if (count!.n > maxTags) throw new TooManyTags(); // rolls the transaction back
          await tx`update registry_things set updated_at = now() where id = ${thingId}`;
          return "ok" as const;
        })
        .catch((err: unknown) => {
          if (err instanceof TooManyTags) return "too-many" as const;
          throw err;
        });
    },

    /** XEP-0347 §3.10: the owner takes the thing out of the registry. */
    async remove(owner: string, jid: string, node: NodeRef): Promise<boolean> {
      const rows = await db`
        delete from registry_things where ${byJid(jid, node)} and owner = ${owner} returning id`;
      return rows.length > 0;
    },

    /** XEP-0347 §3.16 */
    async unregister(jid: string, node: NodeRef): Promise<void> {
      await db`delete from registry_things where ${byJid(jid, node)}`;
    },

    /** XEP-0347 §3.17: unclaimed again, every tag gone, a random KEY nobody knows. */
    async disown(thingId: number, owner: string): Promise<boolean> {
      const key: Tag = { type: "str", name: KEY, value: randomKey() };
      return db.begin(async (tx) => {
        const rows = await tx`
          update registry_things set owner = null, public = false, self_owned = false,
            claim_digest = ${tagsDigest([key])}, claimed_at = null, updated_at = now()
          where id = ${thingId} and owner = ${owner} returning id`;
        if (rows.length === 0) return false;
        await tx`delete from registry_tags where thing_id = ${thingId}`;
        await tx`insert into registry_tags ${tx(tagRows(thingId, [key]))}`;
        return true;
      });
    },
  };
}

class TooManyTags extends Error {}

export type RegistryStore = ReturnType<typeof createRegistryStore>;
