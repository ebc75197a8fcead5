/**
 * The decision engine: who owns the thing, what the owner's rules say, what to answer, and when
 * to ask the owner. Owners and the provisioning service are always allowed; unclaimed things
 * follow the operator's policy; a request no rule covers is denied and becomes a question.
 * Decisions are cached per thing and dropped whenever the thing's rules or owner change.
 * References: XEP-0324 §3.1–§3.4 (the decisions), §6.2 of the XEP (caching; the server knows
 * when to clear); docs/protocol/provisioning-questions.md (questions, rules, evaluation).
 */
import type { Logger } from "../server/observability/logger.ts";
import type { ThingRegistryService } from "../thing-registry/module.ts";
import type { AuditLog } from "./audit.ts";
import type { ProvisioningConfig } from "./config.ts";
import { type AccessRequest, ALLOW_ALL, DENY_ALL, evaluate, requestDigest, type Verdict } from "./rules.ts";
import type { ProvisioningStore, Question } from "./store.ts";

/** Who asked the service to decide: the thing itself (XEP-0324) or the broker's enforcement. */
export type DecisionSource = "thing" | "broker";

export interface DecisionDeps {
  readonly store: ProvisioningStore;
  readonly registry: ThingRegistryService;
  readonly config: ProvisioningConfig;
  /** The service's own JID (provisioning.<domain>): always allowed. */
  readonly serviceJid: string;
  readonly audit: AuditLog;
  readonly log: Logger;
  /** Sends a question to its owner. */
  readonly ask: (question: Question) => void;
  /** Rules of a thing were used up (once-rules): its cache must be cleared. */
  readonly rulesConsumed: (thing: string) => void;
}

/** Most owners looked up and kept (a miss costs one indexed query). */
const OWNER_CACHE_SIZE = 100_000;

export class DecisionEngine {
  private readonly deps: DecisionDeps;
  private readonly owners = new Map<string, string | null>();
  /** thing → (request key → verdict). */
  private readonly cache = new Map<string, Map<string, Verdict>>();
  private cached = 0;

  constructor(deps: DecisionDeps) {
    this.deps = deps;
  }

  async ownerOf(thing: string): Promise<string | undefined> {
    const known = this.owners.get(thing);
    if (known !== undefined) return known ?? undefined;
    const owner = await this.deps.registry.ownerOf(thing);
    if (this.owners.size >= OWNER_CACHE_SIZE) this.owners.clear();
    this.owners.set(thing, owner ?? null);
    return owner;
  }

  /** Forget everything known about a thing (its rules or owner changed). */
  forget(thing: string, owner = false): void {
    const entries = this.cache.get(thing);
    if (entries) {
      this.cached -= entries.size;
      this.cache.delete(thing);
    }
    if (owner) this.owners.delete(thing);
  }

  async decide(thing: string, req: AccessRequest, source: DecisionSource): Promise<Verdict> {
    const { config, serviceJid } = this.deps;
    const owner = await this.ownerOf(thing);
    const digest = requestDigest(req);
    // Identical decisions (a stranger repeating a denied request) are counted, not each written.
    const record = (verdict: Verdict, why: string, extra: Record<string, unknown> = {}) =>
      this.deps.audit.recordRepeatable(
        // The why without "(cached)": a cached answer repeats the decision it came from.
        [thing, owner, req.caller, req.kind, verdict.outcome, why.replace(" (cached)", ""), source]
          .concat(verdict.ruleIds.join(","), digest)
          .join("\u0000"),
        {
          actor: source === "thing" ? thing : serviceJid,
          action: `decision-${req.kind}`,
          thing,
          owner,
          caller: req.caller,
          detail: {
            outcome: verdict.outcome,
            why,
            source,
            rules: verdict.ruleIds,
            ...requestDetail(req),
            ...extra,
          },
        },
      );
    // The owner, the thing itself and the service are never refused.
    if (req.caller === owner || req.caller === thing || req.caller === serviceJid) {
      record(
        ALLOW_ALL,
        req.caller === owner ? "owner" : req.caller === thing ? "the thing itself" : "service",
      );
      return ALLOW_ALL;
    }
    if (owner === undefined) {
      const verdict = config.unclaimed === "allow" ? ALLOW_ALL : DENY_ALL;
      record(verdict, `unclaimed thing: operator policy ${config.unclaimed}`);
      return verdict;
    }
    const key = `${req.kind}\u0000${req.caller}\u0000${digest}`;
    const hit = this.cache.get(thing)?.get(key);
    if (hit) {
      record(hit, "rules (cached)");
      return hit;
    }
    let verdict = evaluate(await this.deps.store.rulesFor(thing, owner), req);
    if (verdict.onceRuleIds.length > 0) {
      const consumed = await this.deps.store.consume(verdict.onceRuleIds);
      if (consumed.length < verdict.onceRuleIds.length) {
        // Another decision used a once-rule first: decide again from what is left.
        verdict = evaluate(await this.deps.store.rulesFor(thing, owner), req);
        if (verdict.onceRuleIds.length > 0) await this.deps.store.consume(verdict.onceRuleIds);
      }
      if (consumed.length > 0 || verdict.onceRuleIds.length > 0) {
        this.forget(thing);
        this.deps.rulesConsumed(thing);
      }
    } else if (verdict.outcome !== "unknown") {
      this.remember(thing, key, verdict);
    }
    if (verdict.outcome !== "unknown") {
      record(verdict, verdict.onceRuleIds.length > 0 ? "rules (once, now used up)" : "rules");
      return verdict;
    }
    // Deny by default, and ask the owner.
    const question = await this.raiseQuestion(thing, owner, req);
    record(DENY_ALL, "no rule: denied by default", question);
    return DENY_ALL;
  }

  private remember(thing: string, key: string, verdict: Verdict): void {
    const limit = this.deps.config.decision_cache_size;
    if (limit === 0) return;
    if (this.cached >= limit) {
      this.cache.clear(); // crude but bounded; the next decisions refill it
      this.cached = 0;
    }
    let entries = this.cache.get(thing);
    if (!entries) {
      entries = new Map();
      this.cache.set(thing, entries);
    }
    if (!entries.has(key)) this.cached++;
    entries.set(key, verdict);
  }

  private async raiseQuestion(
    thing: string,
    owner: string,
    req: AccessRequest,
  ): Promise<Record<string, unknown>> {
    const { store, config } = this.deps;
    const request = {
      nodes: req.nodes,
      fieldNames: req.fieldNames,
      categories: req.categories,
      parameterNames: req.parameterNames,
    };
    const outcome = await store.raiseQuestion(
      { thing, owner, caller: req.caller, kind: req.kind, request },
      requestDigest(req),
      config.question_window,
      config.max_pending_questions,
    );
    if (outcome.kind === "full") {
      this.deps.audit.recordRepeatable(
        ["question-dropped", thing, req.caller, requestDigest(req)].join("\u0000"),
        {
          actor: this.deps.serviceJid,
          action: "question-dropped",
          thing,
          owner,
          caller: req.caller,
          detail: { why: `the owner has ${config.max_pending_questions} unanswered questions` },
        },
      );
      return { question: "not asked: too many pending" };
    }
    if (outcome.kind === "ask") {
      this.deps.ask(outcome.question);
      // Questions are written before the decision is answered: they matter more than decisions.
      await this.deps.audit.write({
        actor: this.deps.serviceJid,
        action: "question-asked",
        thing,
        owner,
        caller: req.caller,
        detail: { key: outcome.question.key, kind: req.kind, ...requestDetail(req) },
      });
    }
    return { question: outcome.question.key, coalesced: outcome.kind === "coalesced" };
  }
}

function requestDetail(req: AccessRequest): Record<string, unknown> {
  const detail: Record<string, unknown> = {};
  if (req.nodes.length > 0) detail.nodes = req.nodes;
  if (req.fieldNames.length > 0) detail.fields = req.fieldNames;
  if (req.categories.length > 0) detail.categories = req.categories;
  if (req.parameterNames.length > 0) detail.parameters = req.parameterNames;
  return detail;
}
