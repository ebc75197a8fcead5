/**
 * Provisioning storage: rules, unanswered questions, things owed a clearCache, the enforcement
 * flags and the append-only audit trail. Every query is a tagged template (no string splicing);
 * inside `db.begin` only `tx` is used (the embedded engine serves one transaction at a time).
 * References: XEP-0324 §3.5 (clearCache re-sent when an offline thing comes back), migrations.ts.
 */
import { randomBytes } from "node:crypto";
import type { FieldCategory } from "../extensions/sensor-data/categories.ts";
import type { NodeRef } from "../extensions/sensor-data/node-ref.ts";
import type { Db } from "../server/storage/db.ts";
import type { NewRule, Rule, RuleKind, Scope } from "./rules.ts";

interface RuleRow {
  id: string;
  thing: string;
  owner: string;
  kind: RuleKind;
  allow: boolean;
  scope: Scope;
  subject: string;
  nodes: string | null;
  field_names: string | null;
  categories: string | null;
  parameter_names: string | null;
  once: boolean;
  origin: string;
  created_at: Date;
}

const list = <T>(text: string | null): T[] | null => (text === null ? null : (JSON.parse(text) as T[]));
const text = (values: readonly unknown[] | null): string | null =>
  values === null ? null : JSON.stringify(values);

/** Node references as stored: always all three attributes, so equal nodes store equal text. */
const storedNode = (n: NodeRef) => ({
  nodeId: n.nodeId,
  sourceId: n.sourceId ?? "",
  cacheType: n.cacheType ?? "",
});

function toRule(r: RuleRow): Rule {
  return {
    id: Number(r.id),
    thing: r.thing,
    owner: r.owner,
    kind: r.kind,
    allow: r.allow,
    scope: r.scope,
    subject: r.subject,
    nodes: list<NodeRef>(r.nodes),
    fieldNames: list<string>(r.field_names),
    categories: list<FieldCategory>(r.categories),
    parameterNames: list<string>(r.parameter_names),
    once: r.once,
    origin: r.origin,
    createdAt: r.created_at,
  };
}

/** What was asked, as stored with a question and shown in its form. */
export interface AskedRequest {
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly categories: readonly FieldCategory[];
  readonly parameterNames: readonly string[];
}

export interface Question {
  readonly key: string;
  readonly thing: string;
  readonly owner: string;
  readonly caller: string;
  readonly kind: RuleKind;
  readonly request: AskedRequest;
  readonly createdAt: Date;
  readonly askedAt: Date;
}

interface QuestionRow {
  key: string;
  thing: string;
  owner: string;
  caller: string;
  kind: RuleKind;
  request: string;
  created_at: Date;
  asked_at: Date;
}

function toQuestion(r: QuestionRow): Question {
  return {
    key: r.key,
    thing: r.thing,
    owner: r.owner,
    caller: r.caller,
    kind: r.kind,
    request: JSON.parse(r.request) as AskedRequest,
    createdAt: r.created_at,
    askedAt: r.asked_at,
  };
}

export type QuestionOutcome =
  /** A new question, or an old one whose window has passed: send it (again). */
  | { readonly kind: "ask"; readonly question: Question }
  /** The same question is pending and was asked recently: nothing to send. */
  | { readonly kind: "coalesced"; readonly question: Question }
  /** The owner has too many unanswered questions. */
  | { readonly kind: "full" };

export interface AuditEntry {
  readonly actor: string;
  readonly action: string;
  readonly thing?: string | undefined;
  readonly owner?: string | undefined;
  readonly caller?: string | undefined;
  readonly detail?: Record<string, unknown>;
  /** When it happened (defaults to the time of writing). */
  readonly at?: Date;
}

export interface AuditRecord extends AuditEntry {
  readonly id: number;
  readonly at: Date;
  readonly detail: Record<string, unknown>;
}

export interface AuditQuery {
  readonly thing?: string | undefined;
  readonly owner?: string | undefined;
  readonly since?: Date | undefined;
  /** Only entries after this id (paging). */
  readonly afterId?: number | undefined;
  readonly limit: number;
}

/** A token (XEP-0324 §3.1): random, URL-safe, no whitespace. */
export function newToken(): string {
  return randomBytes(24).toString("base64url");
}

/** Question keys: unguessable, so a key alone never lets anyone but the owner answer. */
export function newQuestionKey(): string {
  return randomBytes(16).toString("base64url");
}

export function createProvisioningStore(db: Db) {
  return {
    async rulesFor(thing: string, owner: string): Promise<Rule[]> {
      const rows = await db<RuleRow[]>`
        select * from prov_rules where thing = ${thing} and owner = ${owner} order by id`;
      return rows.map(toRule);
    },

    async listRules(owner: string, thing?: string): Promise<Rule[]> {
      const rows = await db<RuleRow[]>`
        select * from prov_rules where owner = ${owner}
          ${thing === undefined ? db`` : db`and thing = ${thing}`}
        order by thing, id`;
      return rows.map(toRule);
    },

    /** Adds a rule unless the thing has `maxPerThing` rules of this owner already. */
    async addRule(rule: NewRule, maxPerThing: number): Promise<Rule | "too-many"> {
      return db.begin(async (tx) => {
        // Serialises rule additions per thing, so two answers cannot both pass the count.
        await tx`select pg_advisory_xact_lock(hashtext(${`prov:${rule.thing}`}))`;
        const [count] = await tx<{ n: number }[]>`
          select count(*)::int as n from prov_rules where thing = ${rule.thing} and owner = ${rule.owner}`;
        if (count!.n >= maxPerThing) return "too-many" as const;
        const [row] = await tx<RuleRow[]>`
          insert into prov_rules (thing, owner, kind, allow, scope, subject, nodes, field_names,
            categories, parameter_names, once, origin)
          values (${rule.thing}, ${rule.owner}, ${rule.kind}, ${rule.allow}, ${rule.scope}, ${rule.subject},
            ${text(rule.nodes === null ? null : rule.nodes.map(storedNode))}, ${text(rule.fieldNames)},
            ${text(rule.categories)}, ${text(rule.parameterNames)}, ${rule.once}, ${rule.origin})
          returning *`;
        return toRule(row!);
      });
    },

    async deleteRule(owner: string, id: number): Promise<Rule | undefined> {
      const [row] = await db<
        RuleRow[]
      >`delete from prov_rules where id = ${id} and owner = ${owner} returning *`;
      return row ? toRule(row) : undefined;
    },

    async deleteRules(owner: string, thing: string): Promise<number> {
      const rows = await db`delete from prov_rules where owner = ${owner} and thing = ${thing} returning id`;
      return rows.length;
    },

    /** Once-rules are used up; returns the ids actually deleted (another decision may have won). */
    async consume(ids: readonly number[]): Promise<number[]> {
      if (ids.length === 0) return [];
      const rows = await db<{ id: string }[]>`
        delete from prov_rules where id in ${db(ids as number[])} and once returning id`;
      return rows.map((r) => Number(r.id));
    },

    /**
     * Records a question unless an identical one is pending: that one is asked again only when
     * it was last asked more than `windowSeconds` ago. New questions respect the owner's quota.
     */
    async raiseQuestion(
      q: Omit<Question, "key" | "createdAt" | "askedAt">,
      digest: string,
      windowSeconds: number,
      maxPending: number,
    ): Promise<QuestionOutcome> {
      return db.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext(${`prov-q:${q.owner}`}))`;
        const [existing] = await tx<QuestionRow[]>`
          select * from prov_questions
          where thing = ${q.thing} and caller = ${q.caller} and kind = ${q.kind} and digest = ${digest}
          for update`;
        if (existing && existing.owner === q.owner) {
          const [renewed] = await tx<QuestionRow[]>`
            update prov_questions set asked_at = ${new Date()}
            where key = ${existing.key} and asked_at < ${new Date(Date.now() - windowSeconds * 1000)}
            returning *`;
          return renewed
            ? { kind: "ask" as const, question: toQuestion(renewed) }
            : { kind: "coalesced" as const, question: toQuestion(existing) };
        }
        // A question left over from an earlier owner is no longer theirs to answer.
        if (existing) await tx`delete from prov_questions where key = ${existing.key}`;
        const [count] = await tx<{ n: number }[]>`
          select count(*)::int as n from prov_questions where owner = ${q.owner}`;
        if (count!.n >= maxPending) return { kind: "full" as const };
        const [row] = await tx<QuestionRow[]>`
          insert into prov_questions (key, thing, owner, caller, kind, request, digest)
          values (${newQuestionKey()}, ${q.thing}, ${q.owner}, ${q.caller}, ${q.kind},
            ${JSON.stringify({ ...q.request, nodes: q.request.nodes.map(storedNode) })}, ${digest})
          returning *`;
        return { kind: "ask" as const, question: toQuestion(row!) };
      });
    },

    async question(key: string): Promise<Question | undefined> {
      const [row] = await db<QuestionRow[]>`select * from prov_questions where key = ${key}`;
      return row ? toQuestion(row) : undefined;
    },

    /** Removes an answered question; false when it was gone already (answered twice at once). */
    async closeQuestion(key: string): Promise<boolean> {
      const rows = await db`delete from prov_questions where key = ${key} returning key`;
      return rows.length > 0;
    },

    async pendingQuestions(owner: string, limit: number): Promise<Question[]> {
      const rows = await db<QuestionRow[]>`
        select * from prov_questions where owner = ${owner} order by created_at, key limit ${limit}`;
      return rows.map(toQuestion);
    },

    /** The thing's pending questions to this owner (a new rule may decide some of them). */
    async pendingQuestionsOfThing(thing: string, owner: string): Promise<Question[]> {
      const rows = await db<QuestionRow[]>`
        select * from prov_questions where thing = ${thing} and owner = ${owner} order by created_at, key`;
      return rows.map(toQuestion);
    },

    /** After an ownership change: questions to anyone but the new owner are void. */
    async dropQuestionsOfThing(thing: string, keepOwner: string | undefined): Promise<number> {
      const rows = await db`
        delete from prov_questions where thing = ${thing}
          ${keepOwner === undefined ? db`` : db`and owner <> ${keepOwner}`}
        returning key`;
      return rows.length;
    },

    async owePendingClear(thing: string): Promise<void> {
      await db`insert into prov_pending_clear (thing) values (${thing}) on conflict (thing) do nothing`;
    },

    async settlePendingClear(thing: string): Promise<void> {
      await db`delete from prov_pending_clear where thing = ${thing}`;
    },

    async pendingClears(): Promise<string[]> {
      const rows = await db<{ thing: string }[]>`select thing from prov_pending_clear`;
      return rows.map((r) => r.thing);
    },

    async setEnforced(thing: string, owner: string, on: boolean): Promise<void> {
      if (on) {
        await db`
          insert into prov_enforced (thing, owner) values (${thing}, ${owner})
          on conflict (thing) do update set owner = excluded.owner, since = now()`;
      } else {
        await db`delete from prov_enforced where thing = ${thing}`;
      }
    },

    async enforced(): Promise<Map<string, string>> {
      const rows = await db<{ thing: string; owner: string }[]>`select thing, owner from prov_enforced`;
      return new Map(rows.map((r) => [r.thing, r.owner]));
    },

    /**
     * The token of a certificate (by fingerprint): the existing one, or a new one for `jid` unless
     * it holds `maxPerJid` already.
     */
    async issueToken(
      jid: string,
      fingerprint: string,
      certificate: string,
      maxPerJid: number,
    ): Promise<{ token: string; created: boolean } | "too-many"> {
      return db.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext(${`prov-token:${fingerprint}`}))`;
        const [existing] = await tx<{ token: string }[]>`
          select token from prov_tokens where fingerprint = ${fingerprint}`;
        if (existing) return { token: existing.token, created: false };
        const [count] = await tx<{ n: number }[]>`
          select count(*)::int as n from prov_tokens where jid = ${jid}`;
        if (count!.n >= maxPerJid) return "too-many" as const;
        const token = newToken();
        await tx`
          insert into prov_tokens (token, jid, fingerprint, certificate)
          values (${token}, ${jid}, ${fingerprint}, ${certificate})`;
        return { token, created: true };
      });
    },

    async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
      if (entries.length === 0) return;
      const rows = entries.map((e) => ({
        at: e.at ?? new Date(),
        actor: e.actor,
        action: e.action,
        thing: e.thing ?? null,
        owner: e.owner ?? null,
        caller: e.caller ?? null,
        detail: JSON.stringify(e.detail ?? {}),
      }));
      await db`insert into prov_audit ${db(rows)}`;
    },

    /**
     * Retention: deletes at most `batch` audit rows older than `cutoff` through the one function
     * the append-only trigger lets through (migrations.ts 002); returns how many were deleted.
     */
    async pruneAudit(cutoff: Date, batch: number): Promise<number> {
      const [row] = await db<{ n: string }[]>`select prov_audit_prune(${cutoff}, ${batch}) as n`;
      return Number(row!.n);
    },

    async audit(q: AuditQuery): Promise<AuditRecord[]> {
      const rows = await db<
        {
          id: string;
          at: Date;
          actor: string;
          action: string;
          thing: string | null;
          owner: string | null;
          caller: string | null;
          detail: string;
        }[]
      >`
        select * from prov_audit where true
          ${q.thing === undefined ? db`` : db`and thing = ${q.thing}`}
          ${q.owner === undefined ? db`` : db`and owner = ${q.owner}`}
          ${q.since === undefined ? db`` : db`and at >= ${q.since}`}
          ${q.afterId === undefined ? db`` : db`and id > ${q.afterId}`}
        order by id limit ${q.limit}`;
      return rows.map((r) => ({
        id: Number(r.id),
        at: r.at,
        actor: r.actor,
        action: r.action,
        thing: r.thing ?? undefined,
        owner: r.owner ?? undefined,
        caller: r.caller ?? undefined,
        detail: JSON.parse(r.detail) as Record<string, unknown>,
      }));
    },
  };
}

export type ProvisioningStore = ReturnType<typeof createProvisioningStore>;
