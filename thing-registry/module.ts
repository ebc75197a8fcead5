/**
 * The thing registry module: a component at registry.<domain> (configurable) that answers every
 * XEP-0347 operation, listed in the domain's disco#items with the `urn:xmpp:iot:discovery`
 * feature.
 * It also provides the service "thing-registry" (ThingRegistryService): who owns what, and a
 * notification whenever that may have changed (claim, remove, disown, unregister, a self-owned
 * registration), so that provisioning stops applying the rules of a previous owner.
 * References: XEP-0347 §3.5 (a registry hosted as a server component), §4 (determining support:
 * the feature on the component, the component among the domain's items), XEP-0030 §4.
 */
import type { PresenceService } from "../extensions/presence/presence.ts";
import type { Module } from "../server/modules/module.ts";
import type { Db } from "../server/storage/db.ts";
import { type RegistryConfig, type RegistryContext, registryConfigSchema } from "./context.ts";
import { FailureCounter, KeyedRateLimiter } from "./limits.ts";
import { registryMigrations } from "./migrations.ts";
import {
  disownHandler,
  mineHandler,
  registerHandler,
  removeHandler,
  searchHandler,
  unregisterHandler,
  updateHandler,
} from "./operations.ts";
import { NS_DISCOVERY } from "./protocol.ts";
import { createRegistryStore, type RegistryStore } from "./store.ts";

/** Service "thing-registry": ownership as other modules (provisioning) need it. */
export interface ThingRegistryService {
  /** The owner of a thing (its bare JID; the record of the thing itself, else of any of its nodes). */
  ownerOf(thing: string): Promise<string | undefined>;
  /** The bare JIDs of the things an owner has claimed. */
  thingsOf(owner: string): Promise<string[]>;
  /** Called after the owner of `thing` may have changed; returns a function that unsubscribes. */
  onOwnershipChange(listener: (thing: string) => void): () => void;
}

/** Wraps the store so every change of ownership is announced after it is committed. */
function announcingOwnership(store: RegistryStore, db: Db, changed: (thing: string) => void): RegistryStore {
  return {
    ...store,
    async register(jid, node, tags, selfOwned) {
      const outcome = await store.register(jid, node, tags, selfOwned);
      if (outcome.kind === "registered") changed(jid); // self-owned now, or unclaimed again
      return outcome;
    },
    async claim(tags, owner, isPublic) {
      const outcome = await store.claim(tags, owner, isPublic);
      if (outcome.kind === "claimed") changed(outcome.thing.jid);
      return outcome;
    },
    async remove(owner, jid, node) {
      const removed = await store.remove(owner, jid, node);
      if (removed) changed(jid);
      return removed;
    },
    async unregister(jid, node) {
      await store.unregister(jid, node);
      changed(jid);
    },
    async disown(thingId, owner) {
      const disowned = await store.disown(thingId, owner);
      if (disowned) {
        const [row] = await db<{ jid: string }[]>`select jid from registry_things where id = ${thingId}`;
        if (row) changed(row.jid);
      }
      return disowned;
    },
  };
}

function createRegistryService(db: Db): ThingRegistryService & { changed(thing: string): void } {
  const listeners = new Set<(thing: string) => void>();
  return {
    async ownerOf(thing) {
      // The thing's own record first (empty node); a concentrator's nodes share one owner.
      const [row] = await db<{ owner: string }[]>`
        select owner from registry_things where jid = ${thing} and owner is not null
        order by (node_id = '' and source_id = '' and cache_type = '') desc, id limit 1`;
      return row?.owner;
    },
    async thingsOf(owner) {
      const rows = await db<{ jid: string }[]>`
        select distinct jid from registry_things where owner = ${owner} order by jid`;
      return rows.map((r) => r.jid);
    },
    onOwnershipChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    changed(thing) {
      for (const listener of listeners) listener(thing);
    },
  };
}

/** Background work of each started instance, awaited by stop() before the database closes. */
const running = new Set<Set<Promise<unknown>>>();

export const thingRegistryModule: Module = {
  name: "thing-registry",
  xeps: ["0347"],
  depends: ["presence"],
  migrations: registryMigrations,
  configSchema: registryConfigSchema,
  start(api) {
    const config = api.config<RegistryConfig>();
    const component = api.component(config.subdomain, config.name);
    component.identity("component", "generic", config.name);
    const inFlight = new Set<Promise<unknown>>();
    running.add(inFlight);
    const registry = createRegistryService(api.db);
    api.provide<ThingRegistryService>("thing-registry", registry);
    const ctx: RegistryContext = {
      api: component,
      localDomain: api.domain,
      store: announcingOwnership(createRegistryStore(api.db), api.db, (thing) => registry.changed(thing)),
      config,
      limits: {
        register: new KeyedRateLimiter(config.register_per_minute),
        update: new KeyedRateLimiter(config.update_per_minute),
        mine: new KeyedRateLimiter(config.mine_per_minute),
        search: new KeyedRateLimiter(config.search_per_minute),
        failedClaims: new FailureCounter(config.max_failed_claims, config.failed_claims_window * 1000),
      },
      presence: api.use<PresenceService>("presence"),
      track(task, what) {
        const p: Promise<unknown> = task
          .catch((err) => component.log.error({ err }, `${what} failed`))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      },
    };
    component.iq("set", NS_DISCOVERY, "register", registerHandler(ctx));
    component.iq("set", NS_DISCOVERY, "unregister", unregisterHandler(ctx));
    component.iq("set", NS_DISCOVERY, "update", updateHandler(ctx));
    component.iq("set", NS_DISCOVERY, "mine", mineHandler(ctx));
    component.iq("set", NS_DISCOVERY, "remove", removeHandler(ctx));
    component.iq("set", NS_DISCOVERY, "disown", disownHandler(ctx));
    component.iq("get", NS_DISCOVERY, "search", searchHandler(ctx));
    component.every(60_000, () => {
      for (const limiter of Object.values(ctx.limits)) limiter.sweep();
    });
  },
  async stop() {
    for (const inFlight of running) {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    }
  },
};
