/**
 * The roster module: roster get (with versioning), set and remove, roster pushes to interested
 * resources, and the "roster" service the presence module changes subscription states through.
 * References: RFC 6121 §2.1.3-§2.1.6 (get, result, set, push), §2.2 (retrieving the roster on
 * login makes a resource "interested"), §2.3-§2.5 (add, update, remove), §2.5.2 (removal also
 * cancels the subscriptions both ways), §2.6 and XEP-0237 (roster versioning), §3.2.2 (unavailable
 * presence before a cancellation).
 *
 * Service "roster" (RosterService): per-account serial execution and every state change, so a
 * push can never be forgotten. Pushes carry 'ver' only to resources that asked with 'ver'.
 */
import { Element } from "ltx";
import { z } from "zod";
import type { Jid } from "../../server/jid.ts";
import type { LocalSession, Module, ModuleApi } from "../../server/modules/module.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { type ItemLimits, itemElement, NS_ROSTER, parseRosterSet, removedItemElement } from "./items.ts";
import { rosterMigrations } from "./migrations.ts";
import { KeyedSerial } from "./serial.ts";
import {
  createRosterStore,
  emptyItem,
  type RosterChange,
  type RosterItem,
  type RosterStore,
} from "./store.ts";
import { hasFrom, hasTo } from "./subscription-state.ts";

const configSchema = z
  .object({
    /** Items one account may have in its roster. */
    max_items: z.number().int().min(1).default(1000),
    /** Longest item name and group name, in characters (RFC 6121 §2.3.3). */
    max_name_length: z.number().int().min(1).max(65536).default(1023),
    max_group_length: z.number().int().min(1).max(65536).default(1023),
    max_groups_per_item: z.number().int().min(0).default(64),
  })
  .strict();
type RosterConfig = z.infer<typeof configSchema>;

export interface RosterService {
  readonly store: RosterStore;
  readonly maxItems: number;
  /** Runs `task` after every earlier task of this account (see KeyedSerial). */
  serial<T>(username: string, task: () => Promise<T>): Promise<T>;
  /** RosterStore.update, then the roster push if the change is visible (RFC 6121 §2.1.6). */
  update(
    username: string,
    jid: string,
    fn: (current: RosterItem | undefined) => RosterItem | undefined,
  ): Promise<RosterChange>;
  /** Throws not-allowed if one more visible item would exceed max_items. */
  checkRoom(username: string, current: RosterItem | undefined): Promise<void>;
}

/** What a session told us in its roster get (RFC 6121 §2.2: it is now "interested"). */
interface Interest {
  readonly versioned: boolean;
}

export function createRosterService(api: ModuleApi, config: RosterConfig) {
  const store = createRosterStore(api.db);
  const serial = new KeyedSerial();
  const interested = new WeakMap<LocalSession, Interest>();

  /** RFC 6121 §2.1.6: a push to every interested resource of the account. */
  function push(username: string, item: Element, version: string): void {
    for (const session of api.sessionsOf(`${username}@${api.domain}`)) {
      const interest = interested.get(session);
      if (!interest) continue;
      const iq = new Element("iq", {
        type: "set",
        id: `push-${Math.random().toString(36).slice(2, 12)}`,
        from: `${username}@${api.domain}`,
        to: session.jid.full,
      });
      iq.c("query", { xmlns: NS_ROSTER, ...(interest.versioned ? { ver: version } : {}) }).cnode(item);
      session.send(iq);
    }
  }

  const service: RosterService = {
    store,
    maxItems: config.max_items,
    serial: (username, task) => serial.run(username, task),
    async update(username, jid, fn) {
      const change = await store.update(username, jid, fn);
      if (change.version !== undefined) {
        const shown = change.after?.visible ? itemElement(change.after) : removedItemElement(jid);
        push(username, shown, change.version);
      }
      return change;
    },
    async checkRoom(username, current) {
      if (current?.visible) return;
      if ((await store.countItems(username)) >= config.max_items) {
        throw new StanzaError("not-allowed", `the roster is full (at most ${config.max_items} items)`);
      }
    },
  };
  return { service, interested, serial };
}

/** Each started instance (one per broker in this process), so stop() can wait for their queues. */
const running = new Set<KeyedSerial>();

export const rosterModule: Module = {
  name: "roster",
  migrations: rosterMigrations,
  configSchema,
  start(api) {
    const config = api.config<RosterConfig>();
    // RFC 6121 §2.6.1 (roster versioning) and §3.4 (pre-approval) are offered as stream features.
    api.streamFeature(new Element("ver", { xmlns: "urn:xmpp:features:rosterver" }));
    api.streamFeature(new Element("sub", { xmlns: "urn:xmpp:features:pre-approval" }));
    const { service, interested, serial } = createRosterService(api, config);
    running.add(serial);
    const limits: ItemLimits = {
      maxNameLength: config.max_name_length,
      maxGroupLength: config.max_group_length,
      maxGroups: config.max_groups_per_item,
    };
    api.provide("roster", service);

    // RFC 6121 §2.1.3 / §2.6.3: roster get, answered on behalf of the account.
    api.iq(
      "get",
      NS_ROSTER,
      "query",
      ({ from, payload, origin }) =>
        service.serial(from.local, async () => {
          const asked = payload.attrs.ver;
          if (origin.session) interested.set(origin.session, { versioned: asked !== undefined });
          const { version, items } = await service.store.list(from.local);
          // RFC 6121 §2.6.3: the client's cached roster is current: an empty result.
          if (asked !== undefined && asked === version) return undefined;
          const query = new Element("query", {
            xmlns: NS_ROSTER,
            ...(asked !== undefined ? { ver: version } : {}),
          });
          for (const item of items) query.cnode(itemElement(item));
          return query;
        }),
      { to: "bare" },
    );

    // RFC 6121 §2.3-§2.5: add, update, remove.
    api.iq(
      "set",
      NS_ROSTER,
      "query",
      async ({ from, payload }) => {
        const request = parseRosterSet(payload, limits);
        const contact = request.jid.full;
        if (request.jid.bare === from.bare) {
          throw new StanzaError("not-allowed", "an account is not an item of its own roster");
        }
        await service.serial(from.local, async () => {
          if (request.kind === "remove") return removeItem(api, service, from, contact);
          await service.checkRoom(from.local, await service.store.get(from.local, contact));
          // RFC 6121 §2.4: an update changes name and groups, never the subscription state.
          await service.update(from.local, contact, (now) => ({
            ...(now ?? emptyItem(contact)),
            visible: true,
            name: request.name,
            groups: request.groups,
          }));
        });
        return undefined;
      },
      { to: "bare" },
    );
  },
  async stop() {
    // Let state changes already under way commit before the database closes.
    await Promise.all([...running].map((s) => s.idle()));
  },
};

/**
 * RFC 6121 §2.5.2: delete the item, push the removal, and end the subscriptions both ways:
 * unsubscribe if the user was subscribed (or asking), unsubscribed if the contact was (or was
 * asking). Sent as already processed: the user's side of the state is gone with the row.
 */
async function removeItem(api: ModuleApi, roster: RosterService, user: Jid, contact: string): Promise<void> {
  const change = await roster.update(user.local, contact, (current) => {
    // RFC 6121 §2.5.3: removing what is not there.
    if (!current?.visible) throw new StanzaError("item-not-found", `${contact} is not in the roster`);
    return undefined;
  });
  const before = change.before!.state;
  const bare = user.bare;
  if (hasFrom(before.subscription)) {
    // RFC 6121 §3.2.2: the contact sees the user go offline before the cancellation arrives.
    for (const session of api.sessionsOf(bare)) {
      if (session.available) {
        api.send(new Element("presence", { type: "unavailable", from: session.jid.full, to: contact }));
      }
    }
  }
  if (hasTo(before.subscription) || before.pendingOut) {
    api.send(new Element("presence", { type: "unsubscribe", from: bare, to: contact }));
  }
  if (hasFrom(before.subscription) || before.pendingIn) {
    api.send(new Element("presence", { type: "unsubscribed", from: bare, to: contact }));
  }
}
