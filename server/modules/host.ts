/**
 * The module host: starts modules in dependency order, runs their migrations, gives each a
 * ModuleApi bound to its host (the domain or a component), and undoes it all on stop.
 * References: DESIGN.md §3; XEP-0030 §4 (components listed as items of the domain).
 */
import type Router from "@koa/router";
import type { Element } from "ltx";
import type { z } from "zod";
import { describeIssues } from "../config.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Router as StanzaRouter } from "../routing/router.ts";
import type { SessionDirectory } from "../routing/sessions.ts";
import type { Storage } from "../storage/db.ts";
import { StanzaError } from "../xml/errors.ts";
import { errorReply, iqResult } from "../xml/stanza.ts";
import type { Module, ModuleApi, PreAuthIqHandler, PreAuthStream } from "./module.ts";

export interface ModuleHostDeps {
  readonly router: StanzaRouter;
  readonly sessions: SessionDirectory;
  readonly storage: Storage;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** `[modules.<name>]` sections from the config file. */
  readonly moduleConfig: Record<string, Record<string, unknown>>;
  /** Mounts routes on the HTTP listener (absent when HTTP is disabled). */
  readonly http?: (mount: (router: Router) => void) => void;
}

/** Orders modules so each comes after the modules it depends on; fails on cycles and unknown names. */
export function orderByDependencies(modules: readonly Module[]): Module[] {
  const byName = new Map(modules.map((m) => [m.name, m]));
  const ordered: Module[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (m: Module, path: string[]): void => {
    const s = state.get(m.name);
    if (s === "done") return;
    if (s === "visiting") throw new Error(`module dependency cycle: ${[...path, m.name].join(" -> ")}`);
    state.set(m.name, "visiting");
    for (const dep of m.depends ?? []) {
      const d = byName.get(dep);
      if (!d) throw new Error(`module ${m.name} depends on ${dep}, which is not loaded`);
      visit(d, [...path, m.name]);
    }
    state.set(m.name, "done");
    ordered.push(m);
  };
  for (const m of modules) visit(m, []);
  return ordered;
}

/** Validates every module's config section up front, so a typo stops the start with its key. */
export function validateModuleConfig(
  modules: readonly Module[],
  sections: Record<string, Record<string, unknown>>,
): Map<string, unknown> {
  const known = new Set(modules.map((m) => m.name));
  const problems: string[] = [];
  for (const name of Object.keys(sections)) {
    if (!known.has(name)) problems.push(`modules.${name}: unknown module`);
  }
  const parsed = new Map<string, unknown>();
  for (const m of modules) {
    const section = sections[m.name];
    if (!m.configSchema) {
      if (section && Object.keys(section).length > 0) problems.push(`modules.${m.name}: takes no settings`);
      continue;
    }
    const result = (m.configSchema as z.ZodType).safeParse(section ?? {});
    if (result.success) parsed.set(m.name, result.data);
    else problems.push(describeIssues(result.error, `modules.${m.name}`));
  }
  if (problems.length > 0) throw new Error(`invalid module configuration:\n${problems.join("\n")}`);
  return parsed;
}

export class ModuleHost {
  /** Stream features modules offer after authentication (read by the c2s streams). */
  readonly streamFeatures: Element[] = [];
  /** Stream features and iq handlers for client streams before authentication (XEP-0077). */
  readonly preAuthFeatures: Element[] = [];
  private readonly preAuthIqs = new Map<string, PreAuthIqHandler>();
  private readonly deps: ModuleHostDeps;
  private readonly started: Module[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly services = new Map<string, unknown>();

  constructor(deps: ModuleHostDeps) {
    this.deps = deps;
  }

  async start(modules: readonly Module[]): Promise<void> {
    const configs = validateModuleConfig(modules, this.deps.moduleConfig);
    for (const module of orderByDependencies(modules)) {
      const log = this.deps.log.child({ module: module.name });
      if (module.migrations?.length) await this.deps.storage.migrate(module.name, module.migrations);
      await module.start(this.api(module, this.deps.router.domain, configs.get(module.name), log));
      this.started.push(module);
      log.debug("module started");
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const module of this.started.splice(0).reverse()) {
      try {
        await module.stop?.();
      } catch (err) {
        this.deps.log.error({ err, module: module.name }, "module failed to stop cleanly");
      }
    }
  }

  private api(module: Module, domain: string, config: unknown, log: Logger): ModuleApi {
    const { router, storage, metrics, sessions } = this.deps;
    const host = router.host(domain);
    if (!host) throw new Error(`no host ${domain}`);
    const api: ModuleApi = {
      domain,
      log,
      db: storage.db,
      metrics,
      config: <T>() => config as T,
      iq: (type, ns, name, handler, opts) => host.addIq(type, ns, name, handler, opts),
      on: (kind, to, hook, priority) => host.addHook(kind, to, hook, priority),
      policy: (hook, priority) => router.addPolicy(hook, priority),
      feature: (ns) => {
        host.features.add(ns);
      },
      streamFeature: (feature) => {
        this.streamFeatures.push(feature);
      },
      preAuthIq: (type, ns, name, handler) => {
        const key = `${type}|${ns}|${name}`;
        if (this.preAuthIqs.has(key)) throw new Error(`pre-authentication iq ${key} is taken`);
        this.preAuthIqs.set(key, handler);
      },
      preAuthStreamFeature: (feature) => {
        this.preAuthFeatures.push(feature);
      },
      identity: (category, type, name) => {
        host.identities.push(name ? { category, type, name } : { category, type });
      },
      component: (subdomain, name) => {
        const componentDomain = `${subdomain}.${router.domain}`;
        router.addComponent(componentDomain, name);
        return this.api(module, componentDomain, config, log.child({ component: componentDomain }));
      },
      send: (stanza: Element) => {
        if (!stanza.attrs.from) stanza.attrs.from = domain;
        void router.route(stanza);
      },
      request: (iq, timeoutMs) => {
        if (!iq.attrs.from) iq.attrs.from = domain;
        return router.request(iq, timeoutMs);
      },
      http: (mount) => {
        if (!this.deps.http) {
          log.warn("HTTP is disabled (http.port = 0): routes not mounted");
          return;
        }
        this.deps.http(mount);
      },
      provide: (service, impl) => {
        if (this.services.has(service)) throw new Error(`service ${service} is already provided`);
        this.services.set(service, impl);
      },
      use: <T>(service: string) => {
        if (!this.services.has(service)) {
          throw new Error(`module ${module.name} uses service ${service}, which no module provides`);
        }
        return this.services.get(service) as T;
      },
      every: (ms, fn) => {
        const timer = setInterval(() => {
          Promise.resolve()
            .then(fn)
            .catch((err) => log.error({ err }, "periodic task failed"));
        }, ms);
        timer.unref();
        this.timers.push(timer);
      },
      sessionsOf: (bare) => sessions.of(bare),
    };
    return api;
  }

  /**
   * Answers an iq a client sent before authenticating with the handler's result or error reply;
   * undefined (synchronously) when no module handles it, so the stream treats it like any other
   * stanza before authentication.
   */
  handlePreAuthIq(iq: Element, stream: PreAuthStream): Promise<Element> | undefined {
    const payload = iq.getChildElements()[0];
    const handler =
      payload && this.preAuthIqs.get(`${iq.attrs.type}|${payload.attrs.xmlns ?? ""}|${payload.name}`);
    if (!payload || !handler) return undefined;
    return (async () => {
      const to = iq.attrs.to;
      if (to !== undefined && to !== this.deps.router.domain) {
        return errorReply(iq, new StanzaError("service-unavailable")); // only the server itself
      }
      try {
        return iqResult(iq, await handler({ stanza: iq, payload, stream }));
      } catch (err) {
        if (err instanceof StanzaError) return errorReply(iq, err);
        this.deps.log.error({ err }, "pre-authentication iq handler failed");
        return errorReply(iq, new StanzaError("internal-server-error"));
      }
    })();
  }

  /** For the core: services provided before modules start (e.g. "accounts"). */
  provide<T>(service: string, impl: T): void {
    this.services.set(service, impl);
  }
}
