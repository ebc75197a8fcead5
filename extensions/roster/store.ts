/**
 * Rosters in SQL: one row per (account, contact), a version per account, and the pending inbound
 * subscription requests kept until answered.
 * References: RFC 6121 §2.1 (roster items), §2.6 and XEP-0237 §4 (roster versioning: every visible
 * change makes a new version), §3.1.3 (keep an inbound request until the contact answers it).
 *
 * Every change runs in one transaction (row lock, write, version bump), so a crash leaves either
 * the old or the new item and version, never a mix. Inside `db.begin` only `tx` is used: the
 * embedded engine serves one transaction at a time and a query on `db` there would wait forever.
 */
import { randomBytes } from "node:crypto";
import type { Db } from "../../server/storage/db.ts";
import {
  isEmptyState,
  NO_SUBSCRIPTION,
  type Subscription,
  type SubscriptionState,
  visibleChange,
} from "./subscription-state.ts";

const TEXT_OID = 25;

export interface RosterItem {
  /** The contact's JID, normalised. */
  readonly jid: string;
  /** False: not in the roster, the row only keeps a pending inbound request. */
  readonly visible: boolean;
  readonly name: string | undefined;
  readonly groups: readonly string[];
  readonly state: SubscriptionState;
  /** The pending inbound request as received (serialised stanza), while state.pendingIn. */
  readonly request: string | undefined;
}

export interface RosterChange {
  readonly before: RosterItem | undefined;
  readonly after: RosterItem | undefined;
  /** The new roster version when the change was visible (a push is due), else undefined. */
  readonly version: string | undefined;
}

export interface RosterStore {
  /** The roster (visible items) and its version, read in one transaction. */
  list(username: string): Promise<{ version: string; items: RosterItem[] }>;
  get(username: string, jid: string): Promise<RosterItem | undefined>;
  /**
   * Reads the row under a lock, lets `fn` decide the new item (undefined = delete), writes it and
   * bumps the version if a client would see the difference. `fn` may throw to abort.
   */
  update(
    username: string,
    jid: string,
    fn: (current: RosterItem | undefined) => RosterItem | undefined,
  ): Promise<RosterChange>;
  /** Contacts with a subscription from the user ("from"/"both") or to them ("to"/"both"). */
  subscribers(username: string): Promise<string[]>;
  subscriptions(username: string): Promise<string[]>;
  /** Contacts the user asked and who have not answered (ask='subscribe'). */
  pendingOut(username: string): Promise<string[]>;
  /** Pending inbound requests, oldest first. */
  requests(username: string): Promise<{ jid: string; request: string }[]>;
  countItems(username: string): Promise<number>;
  countRequests(username: string): Promise<number>;
}

interface Row {
  jid: string;
  visible: boolean;
  name: string | null;
  groups: string[];
  subscription: Subscription;
  pending_out: boolean;
  pending_in: boolean;
  approved: boolean;
  request: string | null;
}

function fromRow(row: Row): RosterItem {
  return {
    jid: row.jid,
    visible: row.visible,
    name: row.name ?? undefined,
    groups: row.groups,
    state: {
      subscription: row.subscription,
      pendingOut: row.pending_out,
      pendingIn: row.pending_in,
      approved: row.approved,
    },
    request: row.request ?? undefined,
  };
}

/** A new item for `jid`: not subscribed, not in the roster until something makes it visible. */
export function emptyItem(jid: string): RosterItem {
  return { jid, visible: false, name: undefined, groups: [], state: NO_SUBSCRIPTION, request: undefined };
}

/** What a roster get or push would show differently. */
export function rosterVisibleChange(a: RosterItem | undefined, b: RosterItem | undefined): boolean {
  const av = a?.visible ?? false;
  const bv = b?.visible ?? false;
  if (av !== bv) return true;
  if (!av || !a || !b) return false;
  return (
    a.name !== b.name ||
    a.groups.length !== b.groups.length ||
    a.groups.some((g, i) => g !== b.groups[i]) ||
    visibleChange(a.state, b.state)
  );
}

export function createRosterStore(db: Db): RosterStore {
  const version = (epoch: string | undefined, counter: string | undefined) =>
    epoch === undefined ? "0" : `${epoch}-${counter}`;

  return {
    async list(username) {
      return db.begin(async (tx) => {
        const [v] = await tx<{ epoch: string; counter: string }[]>`
          select epoch, counter from roster_versions where username = ${username}`;
        const rows = await tx<Row[]>`
          select * from roster_items where username = ${username} and visible order by jid`;
        return { version: version(v?.epoch, v?.counter), items: rows.map(fromRow) };
      });
    },

    async get(username, jid) {
      const [row] = await db<Row[]>`select * from roster_items where username = ${username} and jid = ${jid}`;
      return row ? fromRow(row) : undefined;
    },

    async update(username, jid, fn) {
      return db.begin(async (tx) => {
        const [row] = await tx<Row[]>`
          select * from roster_items where username = ${username} and jid = ${jid} for update`;
        const before = row ? fromRow(row) : undefined;
        let after = fn(before);
        // A hidden row with nothing pending and nothing approved has no reason to exist.
        if (after && !after.visible && isEmptyState(after.state)) after = undefined;
        if (after) {
          const request = after.state.pendingIn ? (after.request ?? null) : null;
          const s = after.state;
          await tx`
            insert into roster_items (username, jid, visible, name, groups, subscription, pending_out,
              pending_in, approved, request, request_at)
            values (${username}, ${jid}, ${after.visible}, ${after.name ?? null},
              ${tx.array([...after.groups], TEXT_OID)}, ${s.subscription}, ${s.pendingOut}, ${s.pendingIn},
              ${s.approved}, ${request}, ${request === null ? null : new Date()})
            on conflict (username, jid) do update set
              visible = excluded.visible, name = excluded.name, groups = excluded.groups,
              subscription = excluded.subscription, pending_out = excluded.pending_out,
              pending_in = excluded.pending_in, approved = excluded.approved, request = excluded.request,
              request_at = case when excluded.request is null then null
                when roster_items.request is not distinct from excluded.request
                  then roster_items.request_at
                else excluded.request_at end`;
        } else if (before) {
          await tx`delete from roster_items where username = ${username} and jid = ${jid}`;
        }
        if (!rosterVisibleChange(before, after)) return { before, after, version: undefined };
        // XEP-0237 §4: every visible change is a new version.
        const [v] = await tx<{ epoch: string; counter: string }[]>`
          insert into roster_versions (username, epoch, counter)
          values (${username}, ${randomBytes(4).toString("hex")}, 1)
          on conflict (username) do update set counter = roster_versions.counter + 1
          returning epoch, counter`;
        return { before, after, version: version(v!.epoch, v!.counter) };
      });
    },

    async subscribers(username) {
      const rows = await db<{ jid: string }[]>`
        select jid from roster_items
        where username = ${username} and subscription in ('from', 'both')`;
      return rows.map((r) => r.jid);
    },

    async subscriptions(username) {
      const rows = await db<{ jid: string }[]>`
        select jid from roster_items where username = ${username} and subscription in ('to', 'both')`;
      return rows.map((r) => r.jid);
    },

    async pendingOut(username) {
      const rows = await db<{ jid: string }[]>`
        select jid from roster_items where username = ${username} and pending_out`;
      return rows.map((r) => r.jid);
    },

    async requests(username) {
      const rows = await db<{ jid: string; request: string | null }[]>`
        select jid, request from roster_items where username = ${username} and pending_in
        order by request_at, jid`;
      return rows.filter((r) => r.request !== null).map((r) => ({ jid: r.jid, request: r.request! }));
    },

    async countItems(username) {
      const [row] = await db<{ n: number }[]>`
        select count(*)::int as n from roster_items where username = ${username} and visible`;
      return row!.n;
    },

    async countRequests(username) {
      const [row] = await db<{ n: number }[]>`
        select count(*)::int as n from roster_items where username = ${username} and pending_in`;
      return row!.n;
    },
  };
}
