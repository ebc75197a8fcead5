/**
 * Search: XEP-0347 operators as SQL over the tag indexes, AND-combined, paged with offset and a
 * result count one larger than asked (to tell whether there are `more`).
 * References: XEP-0347 §3.15 (operators, AND, offset/maxCount/more, only claimed public things,
 * KEY never searchable: a search naming KEY finds nothing), §6.4–§6.5 (KEY never returned).
 */
import type { Db } from "../server/storage/db.ts";
import type { NodeRef } from "./protocol.ts";
import type { RegistryStore } from "./store.ts";
import { KEY, nameKey, type SearchOp, type Tag } from "./tags.ts";

export interface FoundThing {
  readonly jid: string;
  readonly owner: string;
  readonly node: NodeRef;
  readonly tags: readonly Tag[];
}

export interface SearchResult {
  readonly things: readonly FoundThing[];
  readonly more: boolean;
}

/** A LIKE pattern for a mask: the wildcard matches any run of characters, the rest literally. */
export function likePattern(value: string, wildcard: string): string {
  return value
    .split(wildcard)
    .map((piece) => piece.replace(/[\\%_]/g, (c) => `\\${c}`))
    .join("%");
}

type Fragment = ReturnType<Db>;

/** The condition on one tag row's value for `op`. */
function valueCondition(db: Db, op: SearchOp): Fragment {
  const col = op.op.startsWith("str") ? db`str_value` : db`num_value`;
  switch (op.op) {
    case "strEq":
    case "numEq":
      return db`${col} = ${op.value}`;
    case "strNEq":
    case "numNEq":
      return db`${col} <> ${op.value}`;
    case "strGt":
    case "numGt":
      return db`${col} > ${op.value}`;
    case "strGtEq":
    case "numGtEq":
      return db`${col} >= ${op.value}`;
    case "strLt":
    case "numLt":
      return db`${col} < ${op.value}`;
    case "strLtEq":
    case "numLtEq":
      return db`${col} <= ${op.value}`;
    case "strRange":
    case "numRange": {
      const lo = op.minIncluded ? db`${col} >= ${op.min}` : db`${col} > ${op.min}`;
      const hi = op.maxIncluded ? db`${col} <= ${op.max}` : db`${col} < ${op.max}`;
      return db`${lo} and ${hi}`;
    }
    case "strNRange":
    case "numNRange": {
      // The range's own bounds are excluded from the result when they are included in the range.
      const lo = op.minIncluded ? db`${col} < ${op.min}` : db`${col} <= ${op.min}`;
      const hi = op.maxIncluded ? db`${col} > ${op.max}` : db`${col} >= ${op.max}`;
      return db`(${lo} or ${hi})`;
    }
    case "strMask":
      return db`${col} like ${likePattern(op.value, op.wildcard)}`;
  }
}

/**
 * Runs a search. `limit` is the number of things to return at most (the registry's cap already
 * applied); the tags of the things found are read in a second query, KEY left out.
 */
export async function searchThings(
  db: Db,
  store: RegistryStore,
  operators: readonly SearchOp[],
  offset: number,
  limit: number,
): Promise<SearchResult> {
  // §3.15: "Searches on KEY MUST never find things."
  if (operators.some((op) => nameKey(op.name) === KEY)) return { things: [], more: false };
  const conditions = operators.map(
    (op) =>
      db`th.id in (select thing_id from registry_tags where name_key = ${nameKey(op.name)} and ${valueCondition(db, op)})`,
  );
  const where = conditions.reduce((all, c) => db`${all} and ${c}`);
  const rows = await db<
    { id: string; jid: string; owner: string; node_id: string; source_id: string; cache_type: string }[]
  >`
    select th.id, th.jid, th.owner, th.node_id, th.source_id, th.cache_type
    from registry_things th
    where th.public and ${where}
    order by th.id
    limit ${limit + 1} offset ${offset}`;
  const more = rows.length > limit;
  const page = rows.slice(0, limit);
  const tags = await store.publicTags(page.map((r) => Number(r.id)));
  return {
    more,
    things: page.map((r) => ({
      jid: r.jid,
      owner: r.owner,
      node: { nodeId: r.node_id, sourceId: r.source_id, cacheType: r.cache_type },
      tags: tags.get(Number(r.id)) ?? [],
    })),
  };
}
