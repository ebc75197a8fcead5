/**
 * The thing registry module: a component at registry.<domain> (configurable) that answers every
 * XEP-0347 operation, listed in the domain's disco#items with the `urn:xmpp:iot:discovery`
 * feature.
 * References: XEP-0347 §3.5 (a registry hosted as a server component), §4 (determining support:
 * the feature on the component, the component among the domain's items), XEP-0030 §4.
 */
import type { PresenceService } from "../extensions/presence/presence.ts";
import type { Module } from "../server/modules/module.ts";
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
import { createRegistryStore } from "./store.ts";

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
    const ctx: RegistryContext = {
      api: component,
      localDomain: api.domain,
      store: createRegistryStore(api.db),
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
