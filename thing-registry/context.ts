/**
 * The registry's configuration (`[modules.thing-registry]`) and what its handlers share.
 * References: XEP-0347 §3.5 (the registry as a component at a subdomain), §5.2 and §6.6 (which
 * tags a registry stores and how many), the spec digest §6.2 (rate limits per bare JID, register
 * and update from local accounts only, search open to the federation).
 */
import { z } from "zod";
import type { PresenceService } from "../extensions/presence/presence.ts";
import type { Jid } from "../server/jid.ts";
import type { LocalSession, ModuleApi } from "../server/modules/module.ts";
import { StanzaError } from "../server/xml/errors.ts";
import type { FailureCounter, KeyedRateLimiter } from "./limits.ts";
import type { RegistryStore } from "./store.ts";
import { KEY, MAX_NAME_LENGTH, nameKey, PREDEFINED_TAGS, type Tag } from "./tags.ts";

const perMinute = z.number().positive();

export const registryConfigSchema = z
  .object({
    /** The registry answers at <subdomain>.<domain>. */
    subdomain: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "a DNS label")
      .default("registry"),
    /** Its name in disco#items of the domain. */
    name: z.string().min(1).default("Thing registry"),
    /** Tags one thing may have (XEP-0347 §6.6: tag spam). */
    max_tags: z.number().int().min(1).max(1000).default(40),
    /** false: only the predefined tags (XEP-0347 §5.2) and `allowed_tags` are stored. */
    custom_tags: z.boolean().default(true),
    allowed_tags: z
      .array(z.string().min(1).max(MAX_NAME_LENGTH))
      .default([])
      .transform((names) => names.map(nameKey)),
    /** Things one search returns at most (the registry lowers larger maxCount, §3.15). */
    max_search_results: z.number().int().min(1).max(1000).default(100),
    /** Make thing and owner friends after a claim (presence subscription both ways). */
    friendship: z.boolean().default(true),
    /** Seconds to wait for a thing to acknowledge `disowned` (and `claimed`). */
    ack_timeout: z.number().positive().default(10),
    /** Requests per minute per bare JID. */
    register_per_minute: perMinute.default(10),
    update_per_minute: perMinute.default(60),
    mine_per_minute: perMinute.default(10),
    search_per_minute: perMinute.default(60),
    /** Failed claims a JID may make within `failed_claims_window` seconds; then it must wait. */
    max_failed_claims: z.number().int().min(1).default(5),
    failed_claims_window: z.number().positive().default(3600),
  })
  .strict();
export type RegistryConfig = z.infer<typeof registryConfigSchema>;

export interface RegistryLimits {
  readonly register: KeyedRateLimiter;
  readonly update: KeyedRateLimiter;
  readonly mine: KeyedRateLimiter;
  readonly search: KeyedRateLimiter;
  readonly failedClaims: FailureCounter;
}

export interface RegistryContext {
  /** The component's API (registry.<domain>). */
  readonly api: ModuleApi;
  /** The broker's own domain: its accounts are the local ones. */
  readonly localDomain: string;
  readonly store: RegistryStore;
  readonly config: RegistryConfig;
  readonly limits: RegistryLimits;
  readonly presence: PresenceService | undefined;
  /** Keeps a background task (notifications, friendship) alive until the module stops. */
  track(task: Promise<unknown>, what: string): void;
}

/** Throws resource-constraint when `limiter` has no token for the sender's bare JID. */
export function rateLimit(limiter: KeyedRateLimiter, from: Jid, what: string): void {
  const wait = limiter.take(from.bare);
  if (wait > 0) {
    throw new StanzaError("resource-constraint", `too many ${what} requests: try again in ${wait} s`);
  }
}

/** Register and thing updates come from accounts on this broker only (spec digest §6.2). */
export function requireLocal(ctx: RegistryContext, from: Jid, what: string): void {
  if (from.domain !== ctx.localDomain || from.local === "") {
    throw new StanzaError("forbidden", `${what} is open to accounts on ${ctx.localDomain} only`);
  }
}

/** XEP-0347 §5.2, §6.6: predefined tags always; others if the operator allows them; a count limit. */
export function checkTagPolicy(ctx: RegistryContext, tags: readonly Tag[]): void {
  const { config } = ctx;
  if (!config.custom_tags) {
    for (const tag of tags) {
      const key = nameKey(tag.name);
      if (!PREDEFINED_TAGS.has(key) && !config.allowed_tags.includes(key)) {
        throw new StanzaError("bad-request", `tag ${tag.name} is not accepted by this registry`);
      }
    }
  }
  if (tags.length > config.max_tags) {
    throw new StanzaError("bad-request", `too many tags: ${tags.length} (at most ${config.max_tags})`);
  }
}

/** Tags without KEY (updates never store one: it only serves the claim, XEP-0347 §6.5). */
export function withoutKey(tags: readonly Tag[]): Tag[] {
  return tags.filter((t) => nameKey(t.name) !== KEY);
}

/** The session a request to the thing goes to: the available one of highest priority, else any. */
export function thingSession(ctx: RegistryContext, bare: string): LocalSession | undefined {
  const sessions = [...ctx.api.sessionsOf(bare)];
  const available = sessions.filter((s) => s.available).sort((a, b) => b.priority - a.priority);
  return available[0] ?? sessions[0];
}
