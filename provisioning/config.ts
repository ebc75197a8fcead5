/**
 * The provisioning service's configuration (`[modules.provisioning]`), validated with defaults.
 * References: XEP-0324 §3.1 (a provisioning server hosted as a component), docs/protocol/
 * provisioning-questions.md (questions, coalescing, limits).
 */
import { z } from "zod";

export const provisioningConfigSchema = z
  .object({
    /** The service answers at <subdomain>.<domain>. */
    subdomain: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "a DNS label")
      .default("provisioning"),
    /** Its name in disco#items of the domain. */
    name: z.string().min(1).default("Provisioning"),
    /** What things nobody has claimed may let others do: deny (default) or allow everything. */
    unclaimed: z.enum(["deny", "allow"]).default("deny"),
    /**
     * Seconds during which an identical pending question (same thing, caller, kind and request)
     * is not asked again; after that the owner is reminded with the same key.
     */
    question_window: z.number().positive().default(86_400),
    /** Unanswered questions one owner may have; beyond that requests are denied without asking. */
    max_pending_questions: z.number().int().min(1).max(100_000).default(100),
    /** Rules one thing may have; an answer that would add one more is refused (resource-constraint). */
    max_rules_per_thing: z.number().int().min(1).max(100_000).default(500),
    /** Seconds a thing has to acknowledge clearCache before it is remembered for its next login. */
    clear_cache_timeout: z.number().positive().default(10),
    /** Decisions kept in memory (0 = no cache); the cache of a thing is dropped when its rules change. */
    decision_cache_size: z.number().int().min(0).max(10_000_000).default(100_000),
    /** Audit rows are written in batches at least this often (milliseconds). */
    audit_flush_interval: z.number().int().min(1).max(60_000).default(200),
    /**
     * Days audit rows are kept (0 = forever). Older rows are deleted by the retention job, which
     * records how many it deleted and the cut-off; a retention under one day is not possible.
     */
    audit_retention_days: z.number().int().min(0).max(36_500).default(400),
    /** Seconds between runs of the retention job (it also runs once at start). */
    audit_prune_interval: z.number().positive().max(86_400).default(3600),
    /**
     * Seconds during which repeated identical decisions (same thing, caller, kind, outcome,
     * rules and request) are counted instead of written one row each (0 = one row per decision).
     */
    audit_coalesce_window: z.number().min(0).max(86_400).default(60),
    /** Largest page of the audit trail one query returns. */
    max_audit_page: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict();

export type ProvisioningConfig = z.infer<typeof provisioningConfigSchema>;
