/**
 * The router: every stanza accepted from a stream or sent by a module passes through here.
 * Order (DESIGN.md §3): policy hooks by priority → the addressed host's hooks by priority →
 * iq handlers → the RFC 6121 default delivery rules. Metrics count each exit.
 * References: RFC 6120 §8.2.3 (iq semantics), §8.3 (errors), §10 (server rules for processing XML
 * stanzas), RFC 6121 §8.5 (local delivery to bare and full JIDs).
 */
import { randomBytes } from "node:crypto";
import type { Element } from "ltx";
import { type Jid, parseJid } from "../jid.ts";
import type { LocalSession, Origin, StanzaEvent, StanzaHook, Target } from "../modules/module.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { StanzaError } from "../xml/errors.ts";
import { errorReply, iqResult, isErrorStanza, type StanzaKind, stanzaKind } from "../xml/stanza.ts";
import { Host, insertByPriority } from "./host-table.ts";
import type { SessionDirectory } from "./sessions.ts";

export interface RouterDeps {
  readonly domain: string;
  readonly sessions: SessionDirectory;
  readonly log: Logger;
  readonly metrics: Metrics;
}

/** Called after a stanza was handed to local sessions (`sessions` = the ones that took it). */
export type DeliveryObserver = (stanza: Element, sessions: readonly LocalSession[]) => void;

type Outcome = "delivered" | "bounced" | "dropped" | "handled";

interface PendingRequest {
  readonly peer: string;
  resolve(reply: Element): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
}

/** RFC 6121 §3: presence types that belong to subscription management, not availability. */
const SUBSCRIPTION_TYPES = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);
const INTERNAL: Origin = { kind: "internal" };

export class Router {
  readonly domain: string;
  readonly hosts = new Map<string, Host>();
  private readonly policies: { hook: StanzaHook; priority: number }[] = [];
  private readonly remoteHooks: { hook: StanzaHook; priority: number }[] = [];
  private readonly pending = new Map<string, PendingRequest>();
  private readonly hostListeners: ((host: Host) => void)[] = [];
  private readonly deliveryObservers: DeliveryObserver[] = [];
  private readonly deps: RouterDeps;

  constructor(deps: RouterDeps) {
    this.deps = deps;
    this.domain = deps.domain;
    this.hosts.set(deps.domain, new Host(deps.domain, { isComponent: false }));
  }

  host(domain: string): Host | undefined {
    return this.hosts.get(domain);
  }

  addComponent(domain: string, name?: string): Host {
    if (this.hosts.has(domain)) throw new Error(`host ${domain} exists already`);
    const host = new Host(domain, { isComponent: true, ...(name ? { name } : {}) });
    this.hosts.set(domain, host);
    for (const listener of this.hostListeners) listener(host);
    return host;
  }

  /** Calls `fn` for every host now and every component added later (disco, ping). */
  eachHost(fn: (host: Host) => void): void {
    for (const host of this.hosts.values()) fn(host);
    this.hostListeners.push(fn);
  }

  addPolicy(hook: StanzaHook, priority = 0): void {
    insertByPriority(this.policies, hook, priority);
  }

  /** Hooks for stanzas to domains this broker does not serve (s2s registers here). */
  addRemoteHook(hook: StanzaHook, priority = 0): void {
    insertByPriority(this.remoteHooks, hook, priority);
  }

  /**
   * Routes a stanza whose `from` is already stamped and trusted. Never throws: failures become
   * error replies to the sender (RFC 6120 §8.3) or are logged.
   */
  async route(stanza: Element, origin: Origin = INTERNAL): Promise<void> {
    const kind = stanzaKind(stanza);
    if (!kind) {
      this.deps.log.warn({ name: stanza.name }, "router: not a stanza, dropped");
      return;
    }
    let from: Jid;
    try {
      from = parseJid(stanza.attrs.from ?? "");
    } catch {
      this.deps.log.warn({ from: stanza.attrs.from, kind }, "router: stanza without a valid from, dropped");
      this.count(kind, "dropped");
      return;
    }
    let to: Jid;
    if (stanza.attrs.to) {
      try {
        to = parseJid(stanza.attrs.to);
      } catch (err) {
        // RFC 6120 §8.3.3.8
        this.bounce(stanza, new StanzaError("jid-malformed", (err as Error).message), from.domain);
        return;
      }
    } else {
      // RFC 6120 §10.3: no 'to' means the sender's own account handles it.
      to = from.toBare();
    }
    const event: StanzaEvent = { kind, stanza, from, to, origin };
    try {
      for (const { hook } of this.policies) {
        if (await hook(event)) return this.count(kind, "handled");
      }
      const host = this.hosts.get(to.domain);
      if (!host) return await this.routeRemote(event);
      await this.dispatch(event, host, to.local ? (to.resource ? "full" : "bare") : "host");
    } catch (err) {
      if (err instanceof StanzaError) {
        this.bounce(stanza, err);
      } else {
        this.deps.log.error({ err, kind, to: stanza.attrs.to }, "router: hook failed");
        this.bounce(stanza, new StanzaError("internal-server-error"));
      }
    }
  }

  /** Sends an iq and resolves with the reply (result or error stanza) or rejects on timeout. */
  request(iq: Element, timeoutMs = 30_000): Promise<Element> {
    const id = iq.attrs.id || randomBytes(8).toString("hex");
    iq.attrs.id = id;
    const peer = iq.attrs.to ?? "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new StanzaError("remote-server-timeout", `no reply from ${peer} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pending.set(id, { peer, resolve, reject, timer });
      void this.route(iq);
    });
  }

  /** Rejects all requests still waiting (broker shutdown). */
  cancelPending(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new StanzaError("remote-server-timeout", "broker stopping"));
      this.pending.delete(id);
    }
  }

  private async routeRemote(event: StanzaEvent): Promise<void> {
    for (const { hook } of this.remoteHooks) {
      if (await hook(event)) return this.count(event.kind, "handled");
    }
    // RFC 6120 §10.4.3: a domain we cannot reach (no s2s configured for it).
    this.bounce(event.stanza, new StanzaError("remote-server-not-found", `no route to ${event.to.domain}`));
  }

  private async dispatch(event: StanzaEvent, host: Host, target: Target): Promise<void> {
    for (const { hook } of host.hooksFor(event.kind, target)) {
      if (await hook(event)) return this.count(event.kind, "handled");
    }
    switch (target) {
      case "host":
        return this.toHost(event, host);
      case "bare":
        return this.toBare(event, host);
      case "full":
        return this.toFull(event, host);
      case "offline":
        // RFC 6121 §8.5.2.2.1: without offline storage the answer is service-unavailable.
        return this.bounce(event.stanza, new StanzaError("service-unavailable"));
    }
  }

  /** RFC 6120 §10.3 / §8.2.3: iq to the server itself; messages and presence to it. */
  private async toHost(event: StanzaEvent, host: Host): Promise<void> {
    const { stanza, kind } = event;
    if (kind === "iq") return this.handleIq(event, host, "host");
    if (kind === "message" && !isErrorStanza(stanza) && stanza.attrs.type !== "headline") {
      return this.bounce(stanza, new StanzaError("service-unavailable"));
    }
    this.count(kind, "dropped");
  }

  private async handleIq(event: StanzaEvent, host: Host, target: "host" | "bare"): Promise<void> {
    const { stanza } = event;
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") {
      const pending = this.pending.get(stanza.attrs.id ?? "");
      // Only the entity we asked may answer (so a third party cannot forge a reply).
      if (pending && (pending.peer === "" || this.sameEntity(pending.peer, event.from))) {
        clearTimeout(pending.timer);
        this.pending.delete(stanza.attrs.id!);
        pending.resolve(stanza);
        return this.count("iq", "handled");
      }
      return this.count("iq", "dropped");
    }
    const payload = stanza.getChildElements()[0];
    const route = payload && host.iqRoute(target, type ?? "", payload.attrs.xmlns ?? "", payload.name);
    const fromSelf = event.from.bare === event.to.bare;
    if (!payload || !route || (target === "bare" && !fromSelf && !route.fromOthers)) {
      // RFC 6120 §8.4: an iq nobody here understands.
      return this.bounce(stanza, new StanzaError("service-unavailable"));
    }
    const result = await route.handler({ ...event, payload });
    const reply = iqResult(stanza, result);
    if (!reply.attrs.from) reply.attrs.from = event.to.full;
    this.count("iq", "handled");
    await this.route(reply);
  }

  /** RFC 6121 §8.5.2: an account's bare JID (or a component's node). */
  private async toBare(event: StanzaEvent, host: Host): Promise<void> {
    const { stanza, kind, to } = event;
    if (kind === "iq") return this.handleIq(event, host, "bare");
    if (host.isComponent) {
      if (kind === "message" && !isErrorStanza(stanza)) {
        return this.bounce(stanza, new StanzaError("service-unavailable"));
      }
      return this.count(kind, "dropped");
    }
    const sessions = this.deps.sessions.of(to.bare);
    if (kind === "presence") {
      const type = stanza.attrs.type;
      // RFC 6121 §8.5.2.1.2/§8.5.2.2.2: availability goes to every available resource; probes and
      // subscription states are the presence module's (it hooks in at a higher priority).
      if (type === undefined || type === "unavailable") {
        const targets = sessions.filter((s) => s.available);
        if (targets.length === 0) return this.count(kind, "dropped");
        return this.deliverTo(targets, stanza);
      }
      return this.count(kind, "dropped");
    }
    // message: RFC 6121 §8.5.2.1.1 / §8.5.2.2.1
    const type = stanza.attrs.type ?? "normal";
    if (type === "error") return this.count(kind, "dropped");
    if (type === "groupchat") return this.bounce(stanza, new StanzaError("service-unavailable"));
    const available = sessions.filter((s) => s.available && s.priority >= 0);
    if (available.length === 0) {
      if (type === "headline") return this.count(kind, "dropped");
      return this.dispatch(event, host, "offline");
    }
    if (type === "headline") return this.deliverTo(available, stanza);
    // normal and chat: the resource(s) with the highest priority.
    const top = Math.max(...available.map((s) => s.priority));
    return this.deliverTo(
      available.filter((s) => s.priority === top),
      stanza,
    );
  }

  /** RFC 6121 §8.5.3: a full JID. */
  private async toFull(event: StanzaEvent, host: Host): Promise<void> {
    const { stanza, kind, to } = event;
    const type = stanza.attrs.type;
    // RFC 6121 §8.5.3.1 / §8.5.3.2.3: subscription management is always about the bare JID.
    if (kind === "presence" && (SUBSCRIPTION_TYPES.has(type ?? "") || type === "probe")) {
      return this.dispatch(event, host, "bare");
    }
    const session = host.isComponent ? undefined : this.deps.sessions.get(to.bare, to.resource);
    if (session) return this.deliverTo([session], stanza);
    if (kind === "iq") {
      if (type === "result" || type === "error") return this.handleIq(event, host, "bare");
      // RFC 6121 §8.5.3.2.2
      return this.bounce(stanza, new StanzaError("service-unavailable"));
    }
    if (kind === "message") {
      const messageType = type ?? "normal";
      // RFC 6121 §8.5.3.2.1: normal and chat fall back to the bare JID; groupchat bounces.
      if (messageType === "normal" || messageType === "chat") return this.dispatch(event, host, "bare");
      if (messageType === "groupchat") return this.bounce(stanza, new StanzaError("service-unavailable"));
    }
    this.count(kind, "dropped");
  }

  /** Observers see every stanza handed to local sessions (XEP-0280 carbons copy from here). */
  onDelivered(observer: DeliveryObserver): void {
    this.deliveryObservers.push(observer);
  }

  private deliverTo(sessions: readonly LocalSession[], stanza: Element): void {
    const kind = stanza.name as StanzaKind;
    const reached = sessions.filter((session) => session.send(stanza));
    this.count(kind, reached.length > 0 ? "delivered" : "dropped");
    for (const observer of this.deliveryObservers) {
      try {
        observer(stanza, reached);
      } catch (err) {
        this.deps.log.error({ err }, "delivery observer failed");
      }
    }
  }

  /**
   * Sends an error reply back to the sender. Errors are never answered with errors (RFC 6120
   * §8.3.1), and presence errors are not generated for availability stanzas.
   */
  bounce(stanza: Element, error: StanzaError, fromOverride?: string): void {
    const kind = stanzaKind(stanza) ?? "message";
    if (isErrorStanza(stanza) || !stanza.attrs.from || (kind === "presence" && !stanza.attrs.type)) {
      this.count(kind, "dropped");
      return;
    }
    const reply = errorReply(stanza, error);
    if (fromOverride) reply.attrs.from = fromOverride;
    if (!reply.attrs.from) reply.attrs.from = this.domain;
    this.count(kind, "bounced");
    void this.route(reply);
  }

  private sameEntity(expected: string, actual: Jid): boolean {
    return expected === actual.full || expected === actual.bare;
  }

  private count(kind: StanzaKind, outcome: Outcome): void {
    this.deps.metrics.stanzas.inc({ kind, outcome });
  }
}
