/**
 * The provisioning module: a component at provisioning.<domain> (configurable), listed in the
 * domain's disco#items with the `urn:xmpp:iot:provisioning` feature, that answers things'
 * isFriend/canRead/canControl, asks owners, learns their answers as rules, clears things' caches
 * (again when they next come online), keeps an audit trail, and optionally enforces decisions in
 * the broker. It provides the owner-facing service "provisioning" (service.ts).
 * Things and clients can also get tokens for their certificates (tokens.ts).
 * References: XEP-0324 §3.1–§3.5, §4 (determining support), §6.1 of the XEP (a provisioning
 * server hosted as a component needs no friendship); XEP-0030 §4 (components as items).
 */
import type { EventEmitter } from "node:events";
import { installCommands } from "../extensions/adhoc/commands.ts";
import { NS_DATA } from "../extensions/data-forms/form.ts";
import type { LocalSession, Module } from "../server/modules/module.ts";
import type { ThingRegistryService } from "../thing-registry/module.ts";
import { AuditLog } from "./audit.ts";
import { type ProvisioningConfig, provisioningConfigSchema } from "./config.ts";
import { DecisionEngine } from "./decisions.ts";
import { enforcementPolicy } from "./enforcement.ts";
import {
  answerIqHandler,
  answerMessageHook,
  canControlHandler,
  canReadHandler,
  isFriendHandler,
} from "./handlers.ts";
import { provisioningMigrations } from "./migrations.ts";
import { ThingNotifier } from "./notify.ts";
import { ownerCommands } from "./owner-commands.ts";
import { NS_PROVISIONING } from "./protocol.ts";
import { questionMessage } from "./questions.ts";
import { retentionJob } from "./retention.ts";
import { createProvisioningService, type ProvisioningService } from "./service.ts";
import { createProvisioningStore } from "./store.ts";
import { getTokenChallengeResponseHandler, getTokenHandler, TokenIssuer } from "./tokens.ts";

/** Before routing, after nothing: a refused request should cost the broker as little as possible. */
const ENFORCEMENT_PRIORITY = 50;

interface Running {
  readonly inFlight: Set<Promise<unknown>>;
  readonly audit: AuditLog;
}

/** Each started instance (one per broker in this process), so stop() can wait for its work. */
const running = new Set<Running>();

export const provisioningModule: Module = {
  name: "provisioning",
  xeps: ["0324"],
  depends: ["thing-registry", "offline", "disco"],
  migrations: provisioningMigrations,
  configSchema: provisioningConfigSchema,
  async start(api) {
    const config = api.config<ProvisioningConfig>();
    const component = api.component(config.subdomain, config.name);
    component.identity("component", "generic", config.name);
    component.feature(NS_PROVISIONING);
    const store = createProvisioningStore(api.db);
    const audit = new AuditLog(store, component.log, {
      coalesceWindowMs: config.audit_coalesce_window * 1000,
    });
    const inFlight = new Set<Promise<unknown>>();
    running.add({ inFlight, audit });
    const track = (task: Promise<unknown>, what: string) => {
      const p: Promise<unknown> = task
        .catch((err) => component.log.error({ err }, `${what} failed`))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    };
    const registry = api.use<ThingRegistryService>("thing-registry");
    const notifier = new ThingNotifier({
      api: component,
      store,
      audit,
      timeoutMs: config.clear_cache_timeout * 1000,
      track,
    });
    await notifier.load();
    const engine = new DecisionEngine({
      store,
      registry,
      config,
      serviceJid: component.domain,
      audit,
      log: component.log,
      ask: (question) => component.send(questionMessage(question, component.domain)),
      rulesConsumed: (thing) => track(notifier.clearCache(thing, "a once-rule was used"), "clearCache"),
    });
    const enforced = await store.enforced();
    const service = createProvisioningService({ store, engine, notifier, audit, config, enforced, track });
    api.provide<ProvisioningService>("provisioning", service);

    component.iq("get", NS_PROVISIONING, "isFriend", isFriendHandler(engine));
    component.iq("get", NS_PROVISIONING, "canRead", canReadHandler(engine));
    component.iq("get", NS_PROVISIONING, "canControl", canControlHandler(engine));
    component.iq("set", NS_DATA, "x", answerIqHandler(service));
    const tokens = new TokenIssuer({ store, audit });
    component.iq("get", NS_PROVISIONING, "getToken", getTokenHandler(tokens));
    component.iq(
      "get",
      NS_PROVISIONING,
      "getTokenChallengeResponse",
      getTokenChallengeResponseHandler(tokens),
    );
    component.on("message", "host", answerMessageHook(component, service));
    installCommands(component, ownerCommands(service, registry));
    api.policy(enforcementPolicy({ domain: api.domain, enforced, engine }), ENFORCEMENT_PRIORITY);

    // XEP-0324 §6.2 of the XEP: a thing that was offline gets its owed clearCache when it is back.
    api
      .use<EventEmitter>("session-events")
      .on("session-available", (session: LocalSession) => notifier.sessionAvailable(session));

    // A new owner (or none): the previous owner's rules, questions and enforcement no longer apply.
    registry.onOwnershipChange((thing) => {
      engine.forget(thing, true);
      track(
        (async () => {
          const owner = await engine.ownerOf(thing);
          const dropped = await store.dropQuestionsOfThing(thing, owner);
          const enforcedBy = enforced.get(thing);
          if (enforcedBy !== undefined && enforcedBy !== owner) {
            await store.setEnforced(thing, enforcedBy, false);
            enforced.delete(thing);
          }
          audit.record({
            actor: component.domain,
            action: "owner-changed",
            thing,
            owner,
            detail: {
              questionsDropped: dropped,
              enforcementEnded: enforcedBy !== undefined && enforcedBy !== owner,
            },
          });
          await notifier.clearCache(thing, "the owner changed");
        })(),
        "ownership change",
      );
    });

    component.every(config.audit_flush_interval, () => audit.tick());
    if (config.audit_retention_days > 0) {
      const prune = retentionJob({
        store,
        audit,
        log: component.log,
        actor: component.domain,
        retentionDays: config.audit_retention_days,
      });
      track(prune(), "audit retention"); // once at start, so short-lived brokers prune too
      component.every(config.audit_prune_interval * 1000, prune);
    }
  },
  async stop() {
    for (const r of running) {
      while (r.inFlight.size > 0) await Promise.all([...r.inFlight]);
      await r.audit.settle();
    }
  },
};
