/**
 * The owner-facing provisioning API (service "provisioning"): rules, pending questions, answers,
 * the audit trail and broker-side enforcement. XMPP handlers, ad-hoc commands and the portal all
 * go through it, so every change is checked (only the thing's current owner), audited, and
 * followed by a clearCache to the thing. Failures are StanzaErrors a handler can return as is.
 * References: XEP-0324 §3.5 (clearCache after a change), §3.1 (friend/unfriend recommendations),
 * docs/protocol/provisioning-questions.md (answers, rules, audit, enforcement).
 */
import type { Element } from "ltx";
import type { FieldCategory } from "../extensions/sensor-data/categories.ts";
import type { NodeRef } from "../extensions/sensor-data/node-ref.ts";
import { StanzaError } from "../server/xml/errors.ts";
import type { AuditLog } from "./audit.ts";
import type { ProvisioningConfig } from "./config.ts";
import type { DecisionEngine } from "./decisions.ts";
import type { ThingNotifier } from "./notify.ts";
import { parseAnswer, ruleFromAnswer, type SubmittedAnswer } from "./questions.ts";
import { evaluate, type NewRule, type Rule, type Scope } from "./rules.ts";
import type { AuditRecord, ProvisioningStore, Question } from "./store.ts";

/** An owner's answer given through the API (ad-hoc commands, portal) rather than a form. */
export interface OwnerAnswer {
  readonly allow: boolean;
  readonly scope: Scope;
  readonly once?: boolean;
  /** Omitted = all; otherwise a selection among what was asked (node keys, see rules.ts nodeKey). */
  readonly nodes?: readonly string[];
  readonly fieldNames?: readonly string[];
  readonly categories?: readonly string[];
  readonly parameterNames?: readonly string[];
}

export interface AuditFilter {
  readonly owner?: string;
  readonly thing?: string;
  readonly since?: Date;
  readonly afterId?: number;
  readonly limit: number;
}

/** Service "provisioning". Owners are bare JIDs; every call checks current ownership. */
export interface ProvisioningService {
  listRules(owner: string, thing?: string): Promise<Rule[]>;
  deleteRule(owner: string, id: number): Promise<Rule>;
  deleteRules(owner: string, thing: string): Promise<number>;
  pendingQuestions(owner: string): Promise<Question[]>;
  answer(owner: string, key: string, answer: OwnerAnswer): Promise<Rule>;
  /** The XEP-0004 way: a submitted question form (`<x type='submit'/>`); undefined for cancel. */
  answerForm(owner: string, x: Element): Promise<Rule | undefined>;
  audit(filter: AuditFilter): Promise<AuditRecord[]>;
  setEnforcement(owner: string, thing: string, on: boolean): Promise<void>;
  isEnforced(thing: string): boolean;
}

export interface ServiceDeps {
  readonly store: ProvisioningStore;
  readonly engine: DecisionEngine;
  readonly notifier: ThingNotifier;
  readonly audit: AuditLog;
  readonly config: ProvisioningConfig;
  /** Things with broker-side enforcement and their owner (kept in memory for the policy hook). */
  readonly enforced: Map<string, string>;
  readonly track: (task: Promise<unknown>, what: string) => void;
}

export function createProvisioningService(deps: ServiceDeps): ProvisioningService & {
  /** After any rule change concerning a thing: caches, clearCache, recommendations. */
  rulesChanged(thing: string, why: string, friendship?: { rule: NewRule; removed?: boolean }): void;
} {
  const { store, engine, notifier, audit, config } = deps;

  async function requireOwner(owner: string, thing: string): Promise<void> {
    const current = await engine.ownerOf(thing);
    // The same answer for "not yours" and "unknown": nothing leaks about other people's things.
    if (current !== owner) throw new StanzaError("item-not-found", `you do not own ${thing}`);
  }

  function rulesChanged(thing: string, why: string, friendship?: { rule: NewRule; removed?: boolean }): void {
    engine.forget(thing);
    deps.track(notifier.clearCache(thing, why), "clearCache");
    const rule = friendship?.rule;
    // XEP-0324 §3.1: recommend (or withdraw) a friendship with one named caller.
    if (rule && rule.kind === "friend" && rule.scope === "caller" && !rule.once) {
      if (friendship.removed && !rule.allow) return; // a deny withdrawn recommends nothing
      notifier.recommend(thing, rule.allow && !friendship.removed ? "friend" : "unfriend", rule.subject);
    }
  }

  async function applyAnswer(owner: string, q: Question, a: SubmittedAnswer): Promise<Rule> {
    // Only the thing's current owner may answer, and only their own question.
    if (q.owner !== owner) throw new StanzaError("forbidden", "this question was not asked to you");
    if ((await engine.ownerOf(q.thing)) !== owner) {
      throw new StanzaError("forbidden", `you no longer own ${q.thing}`);
    }
    const draft = ruleFromAnswer(q, a); // bad-request when the selection was not asked for
    const rule = await store.addRule(draft, config.max_rules_per_thing);
    if (rule === "too-many") {
      throw new StanzaError(
        "resource-constraint",
        `${q.thing} has ${config.max_rules_per_thing} rules already`,
      );
    }
    if (!(await store.closeQuestion(q.key))) {
      await store.deleteRule(owner, rule.id); // answered twice at once: the first answer stands
      throw new StanzaError("item-not-found", "this question was answered already");
    }
    // Caches go first: the new rule must apply as soon as it exists.
    rulesChanged(q.thing, `rule ${rule.id} added`, { rule });
    // Answers and rule changes are stored before the owner hears "done" (not batched).
    await audit.write({
      actor: owner,
      action: "answer",
      thing: q.thing,
      owner,
      caller: q.caller,
      detail: { key: q.key, allow: rule.allow, scope: rule.scope, once: rule.once, rule: rule.id },
    });
    await audit.write({
      actor: owner,
      action: "rule-added",
      thing: q.thing,
      owner,
      caller: q.caller,
      detail: ruleDetail(rule),
    });
    await closeDecidedQuestions(owner, q.thing, rule);
    return rule;
  }

  /**
   * A new rule may decide other callers' pending questions too (an answer for a whole domain, or
   * for everyone): those are closed, not asked again. A once-rule closes nothing, because it
   * decides only the next request.
   */
  async function closeDecidedQuestions(owner: string, thing: string, rule: Rule): Promise<void> {
    if (rule.once) return;
    const pending = await store.pendingQuestionsOfThing(thing, owner);
    if (pending.length === 0) return;
    const rules = await store.rulesFor(thing, owner);
    const before = rules.filter((r) => r.id !== rule.id);
    for (const q of pending) {
      const request = { kind: q.kind, caller: q.caller, ...q.request };
      const verdict = evaluate(rules, request);
      // Decided now, and not before: the new rule is what answers this question.
      if (verdict.outcome === "unknown" || evaluate(before, request).outcome !== "unknown") continue;
      if (!(await store.closeQuestion(q.key))) continue; // answered meanwhile
      await audit.write({
        actor: owner,
        action: "question-closed",
        thing,
        owner,
        caller: q.caller,
        detail: { key: q.key, why: "decided by a new rule", rule: rule.id, outcome: verdict.outcome },
      });
    }
  }

  async function questionFor(key: string): Promise<Question> {
    const q = await store.question(key);
    if (!q) throw new StanzaError("item-not-found", "no such question (answered already, or never asked)");
    return q;
  }

  return {
    rulesChanged,

    listRules: (owner, thing) => store.listRules(owner, thing),

    async deleteRule(owner, id) {
      const rule = await store.deleteRule(owner, id);
      if (!rule) throw new StanzaError("item-not-found", `no rule ${id}`);
      rulesChanged(rule.thing, `rule ${id} deleted`, { rule, removed: true });
      await audit.write({
        actor: owner,
        action: "rule-deleted",
        thing: rule.thing,
        owner,
        detail: ruleDetail(rule),
      });
      return rule;
    },

    async deleteRules(owner, thing) {
      const count = await store.deleteRules(owner, thing);
      if (count > 0) rulesChanged(thing, `${count} rules deleted`);
      await audit.write({ actor: owner, action: "rules-deleted", thing, owner, detail: { count } });
      return count;
    },

    pendingQuestions: (owner) => store.pendingQuestions(owner, config.max_pending_questions),

    async answer(owner, key, a) {
      const q = await questionFor(key);
      return applyAnswer(owner, q, {
        key,
        allow: a.allow,
        scope: a.scope,
        once: a.once ?? false,
        nodes: a.nodes,
        fieldNames: a.fieldNames,
        categories: a.categories,
        parameterNames: a.parameterNames,
      });
    },

    async answerForm(owner, x) {
      const a = parseAnswer(x);
      if (!a) return undefined; // a cancelled form: the question stays open
      return applyAnswer(owner, await questionFor(a.key), a);
    },

    audit(filter) {
      return audit.query({ ...filter, limit: Math.min(Math.max(1, filter.limit), config.max_audit_page) });
    },

    async setEnforcement(owner, thing, on) {
      await requireOwner(owner, thing);
      await store.setEnforced(thing, owner, on);
      if (on) deps.enforced.set(thing, owner);
      else deps.enforced.delete(thing);
      await audit.write({ actor: owner, action: on ? "enforcement-on" : "enforcement-off", thing, owner });
    },

    isEnforced: (thing) => deps.enforced.has(thing),
  };
}

export function ruleDetail(rule: Rule): Record<string, unknown> {
  const detail: Record<string, unknown> = {
    rule: rule.id,
    kind: rule.kind,
    allow: rule.allow,
    scope: rule.scope,
    subject: rule.subject,
    once: rule.once,
    origin: rule.origin,
  };
  if (rule.nodes) detail.nodes = rule.nodes as NodeRef[];
  if (rule.fieldNames) detail.fields = rule.fieldNames;
  if (rule.categories) detail.categories = rule.categories as FieldCategory[];
  if (rule.parameterNames) detail.parameters = rule.parameterNames;
  return detail;
}
