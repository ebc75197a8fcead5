/**
 * The module contract: how a feature plugs into the broker (DESIGN.md §3).
 * A small core routes stanzas; modules hook into routing with priorities, answer iqs, contribute
 * disco identities/features, own their SQL migrations and may mount HTTP routes.
 * References: XEP-0030 (disco contributions), XEP-0114-style in-process components.
 */
import type Router from "@koa/router";
import type { Element } from "ltx";
import type { z } from "zod";
import type { Jid } from "../jid.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Db, Migration } from "../storage/db.ts";
import type { StanzaKind } from "../xml/stanza.ts";

/** Where a stanza came from: the stream that delivered it, or a module inside the broker. */
export interface Origin {
  readonly kind: "c2s" | "s2s" | "component" | "internal";
  /** The authenticated client session (c2s only). */
  readonly session?: LocalSession;
}

/** A bound client resource as routing sees it (RFC 6120 §7, RFC 6121 §4.2 availability). */
export interface LocalSession {
  readonly id: string;
  readonly jid: Jid;
  /** RFC 6121 §4.7.2.3: priority of the last available presence; undefined until available. */
  priority: number;
  /** True between the first available presence and unavailable (RFC 6121 §4.2, §4.5). */
  available: boolean;
  /** The session's last broadcast presence (RFC 6121 §4.4.2). */
  presence: Element | undefined;
  /** Sends a stanza down this session's stream. Returns false if the stream is gone. */
  send(stanza: Element): boolean;
  /** Ends the stream with a stream error (e.g. "conflict" on resource takeover). */
  close(condition?: string, text?: string): void;
}

/**
 * The address class of a stanza's `to` relative to the host (or component) a hook is bound to:
 * "host" = the domain itself, "bare" = an account's bare JID, "full" = one of its resources,
 * "offline" = a message for an account with no resource that can take it (RFC 6121 §8.5.2.2.1),
 * where offline storage hooks in; the default answer there is service-unavailable.
 */
export type Target = "host" | "bare" | "full" | "offline";

export interface StanzaEvent {
  readonly kind: StanzaKind;
  readonly stanza: Element;
  /** Stamped and validated sender. */
  readonly from: Jid;
  /** Addressee; for stanzas without `to` this is the sender's bare JID (RFC 6120 §10.3). */
  readonly to: Jid;
  readonly origin: Origin;
}

/**
 * A hook returns true when it has dealt with the stanza (delivery stops there), or nothing to let
 * lower-priority hooks run. Throwing a StanzaError bounces the stanza with that error.
 */
export type StanzaHook = (event: StanzaEvent) => boolean | undefined | Promise<boolean | undefined>;

/** Returns the payload of the result (or undefined for an empty result); throws StanzaError. */
export type IqHandler = (
  event: StanzaEvent & { readonly payload: Element },
) => Element | undefined | Promise<Element | undefined>;

/** A client stream that has not authenticated yet (for handlers of pre-authentication iqs). */
export interface PreAuthStream {
  readonly id: string;
  readonly remoteAddress: string;
  readonly secure: boolean;
}

/**
 * Answers an iq sent before authentication: returns the result payload (or undefined for an empty
 * result), or throws StanzaError. The stanza has no `from`: the client has no JID yet.
 */
export type PreAuthIqHandler = (event: {
  readonly stanza: Element;
  readonly payload: Element;
  readonly stream: PreAuthStream;
}) => Element | undefined | Promise<Element | undefined>;

export interface IqOptions {
  readonly to?: "host" | "bare";
  readonly fromOthers?: boolean;
}

export interface ModuleApi {
  /** The host (domain or component domain) this API is bound to. */
  readonly domain: string;
  readonly log: Logger;
  readonly db: Db;
  readonly metrics: Metrics;
  /** This module's validated config section (`[modules.<name>]`), defaults applied. */
  config<T>(): T;
  /**
   * Answers iq get/set with a child <name xmlns=ns/> addressed to this host, or with `to: "bare"`
   * to an account's bare JID on its behalf (RFC 6120 §10.3.3, e.g. rosters). Bare handlers only
   * see requests from the account itself unless `fromOthers` is set; others get
   * service-unavailable, so nothing leaks about the account (RFC 6121 §8.5.1).
   */
  iq(type: "get" | "set", ns: string, name: string, handler: IqHandler, opts?: IqOptions): void;
  /** Hooks delivery of message/presence/iq addressed to this host's entities, by priority (high first). */
  on(kind: StanzaKind, to: Target, hook: StanzaHook, priority?: number): void;
  /** Runs before dispatch for every routed stanza: authorise, meter, rate-limit. */
  policy(hook: StanzaHook, priority?: number): void;
  /**
   * A stream feature offered to clients after authentication, next to <bind/> (RFC 6120 §4.3.2),
   * e.g. RFC 6121 §2.6.1 <ver xmlns='urn:xmpp:features:rosterver'/>.
   */
  streamFeature(feature: Element): void;
  /**
   * Iqs allowed on a client stream before authentication (after TLS where TLS is required), with
   * a stream feature offered there (next to the SASL mechanisms), e.g. XEP-0077 registration.
   */
  preAuthIq(type: "get" | "set", ns: string, name: string, handler: PreAuthIqHandler): void;
  preAuthStreamFeature(feature: Element): void;
  /** XEP-0030: contribute a feature / identity to this host's disco#info. */
  feature(ns: string): void;
  identity(category: string, type: string, name?: string): void;
  /** An in-process component at `<subdomain>.<domain>` (listed in the domain's disco#items). */
  component(subdomain: string, name?: string): ModuleApi;
  /** Routes a stanza from inside the broker (from must be set). */
  send(stanza: Element): void;
  /** Sends an iq get/set and resolves with the result (rejects with StanzaError or on timeout). */
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  /** Mounts routes on the HTTP listener. */
  http(mount: (router: Router) => void): void;
  provide<T>(service: string, impl: T): void;
  use<T>(service: string): T;
  /** Runs fn every ms; cleared when the broker stops. */
  every(ms: number, fn: () => void | Promise<void>): void;
  /** Registered local sessions (read-only view). */
  sessionsOf(bare: string): readonly LocalSession[];
}

export interface Module {
  readonly name: string;
  /** XEP numbers implemented, for docs and disco tooling: ["0030"]. */
  readonly xeps?: readonly string[];
  readonly depends?: readonly string[];
  readonly migrations?: readonly Migration[];
  /** Schema of `[modules.<name>]` in the config file; unknown keys there stop the start. */
  readonly configSchema?: z.ZodType;
  start(api: ModuleApi): void | Promise<void>;
  stop?(): void | Promise<void>;
}
