/**
 * Rules and their evaluation: pure functions, no I/O. A rule is an owner's decision about one
 * thing: who (scope), what (kind, nodes, fields/categories or parameters), allow or deny, once or
 * always. Evaluation picks the most specific scope that has a rule for the caller, lets deny beat
 * allow at that level, and narrows the answer to what is permitted.
 * References: XEP-0324 §3.1 (isFriend), §3.3 (canRead: "the nodes and fields listed are the only
 * ones allowed"; empty lists mean everything requested), §3.4 (canControl, parameters);
 * docs/protocol/provisioning-questions.md §Rules (the evaluation order, written for owners).
 */
import { createHash } from "node:crypto";
import { FIELD_CATEGORIES, type FieldCategory } from "../extensions/sensor-data/categories.ts";
import { type NodeRef, sameNode } from "../extensions/sensor-data/node-ref.ts";

export type RuleKind = "friend" | "read" | "control";
export type Scope = "caller" | "domain" | "everyone";
export const RULE_KINDS: readonly RuleKind[] = ["friend", "read", "control"];
export const SCOPES: readonly Scope[] = ["caller", "domain", "everyone"];

export interface Rule {
  readonly id: number;
  readonly thing: string;
  readonly owner: string;
  readonly kind: RuleKind;
  readonly allow: boolean;
  readonly scope: Scope;
  /** The caller's bare JID (caller), a domain (domain) or "" (everyone). */
  readonly subject: string;
  /** null = all. */
  readonly nodes: readonly NodeRef[] | null;
  readonly fieldNames: readonly string[] | null;
  readonly categories: readonly FieldCategory[] | null;
  readonly parameterNames: readonly string[] | null;
  readonly once: boolean;
  /** Where the rule comes from: `question:<key>`, `owner` (API), later `contract:<id>`. */
  readonly origin: string;
  readonly createdAt: Date;
}

export type NewRule = Omit<Rule, "id" | "createdAt">;

/** What a caller wants from a thing; empty lists mean "everything" (XEP-0324 §3.3). */
export interface AccessRequest {
  readonly kind: RuleKind;
  /** The caller's bare JID. */
  readonly caller: string;
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly categories: readonly FieldCategory[];
  readonly parameterNames: readonly string[];
}

export interface Verdict {
  readonly outcome: "allow" | "deny" | "unknown";
  /** For allow: what to answer with; an empty list means everything requested. */
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly categories: readonly FieldCategory[];
  readonly parameterNames: readonly string[];
  /** The rules the verdict came from (audit), and the `once` ones among them (to consume). */
  readonly ruleIds: readonly number[];
  readonly onceRuleIds: readonly number[];
}

const NONE = { nodes: [], fieldNames: [], categories: [], parameterNames: [] } as const;
const UNKNOWN: Verdict = { outcome: "unknown", ...NONE, ruleIds: [], onceRuleIds: [] };

/** The domain of a bare JID (or the JID itself for a domain JID). */
export function domainOf(bareJid: string): string {
  const at = bareJid.lastIndexOf("@");
  return at >= 0 ? bareJid.slice(at + 1) : bareJid;
}

/** How specifically a rule names the caller: 3 caller, 2 domain, 1 everyone, 0 not at all. */
export function specificity(rule: Pick<Rule, "scope" | "subject">, caller: string): number {
  if (rule.scope === "caller") return rule.subject === caller ? 3 : 0;
  if (rule.scope === "domain") return rule.subject === domainOf(caller) ? 2 : 0;
  return 1;
}

/** A stable text for a node: the parts percent-encoded, so `/` only separates them. */
export function nodeKey(node: NodeRef): string {
  const source = node.sourceId ?? "";
  const cache = node.cacheType ?? "";
  const id = encodeURIComponent(node.nodeId);
  return source === "" && cache === ""
    ? id
    : `${encodeURIComponent(source)}/${encodeURIComponent(cache)}/${id}`;
}

export function nodeLabel(node: NodeRef): string {
  const parts = [node.sourceId, node.cacheType].filter((p) => p);
  return parts.length > 0 ? `${node.nodeId} (${parts.join(", ")})` : node.nodeId;
}

/** Identifies identical requests, so that identical questions are asked once. */
export function requestDigest(req: Omit<AccessRequest, "caller">): string {
  const canonical = JSON.stringify([
    req.kind,
    req.nodes.map(nodeKey).sort(),
    [...req.fieldNames].sort(),
    [...req.categories].sort(),
    [...req.parameterNames].sort(),
  ]);
  return createHash("sha256").update(canonical).digest("base64url");
}

function isWhole(rule: Rule): boolean {
  return (
    rule.nodes === null &&
    rule.fieldNames === null &&
    rule.categories === null &&
    rule.parameterNames === null
  );
}

/** A deny that names nodes and nothing else takes those nodes away; other denies are per item. */
function isNodeDeny(rule: Rule): boolean {
  return (
    rule.nodes !== null &&
    rule.fieldNames === null &&
    rule.categories === null &&
    rule.parameterNames === null
  );
}

function deniesNode(rule: Rule, node: NodeRef): boolean {
  return isNodeDeny(rule) && rule.nodes!.some((n) => sameNode(n, node));
}

function covers(rule: Rule, node: NodeRef): boolean {
  return rule.nodes === null || rule.nodes.some((n) => sameNode(n, node));
}

/**
 * Narrows requested names (fields or parameters) to what the allow rules permit and the deny
 * rules do not take away. undefined = nothing left (deny). A request for "all" against rules that
 * permit all but deny some cannot be answered with a list of the rest (the service does not know
 * the thing's names), so it is refused: the caller can ask for named items.
 */
function narrowNames(
  requested: readonly string[],
  allowed: readonly (readonly string[] | null)[],
  denied: readonly (readonly string[] | null)[],
): string[] | undefined {
  const all = allowed.some((list) => list === null);
  const permitted = new Set(allowed.flatMap((list) => list ?? []));
  const refused = new Set(denied.flatMap((list) => list ?? []));
  if (requested.length > 0) {
    const out = requested.filter((n) => (all || permitted.has(n)) && !refused.has(n));
    return out.length > 0 ? out : undefined;
  }
  if (all) return refused.size === 0 ? [] : undefined;
  const out = [...permitted].filter((n) => !refused.has(n));
  return out.length > 0 ? out : undefined;
}

/** Categories have a known universe, so "all but these" can be listed. */
function narrowCategories(
  requested: readonly FieldCategory[],
  allowed: readonly (readonly FieldCategory[] | null)[],
  denied: readonly (readonly FieldCategory[] | null)[],
): FieldCategory[] | undefined {
  const wanted = requested.length > 0 ? requested : FIELD_CATEGORIES;
  const all = allowed.some((list) => list === null);
  const permitted = new Set(allowed.flatMap((list) => list ?? []));
  const refused = new Set(denied.flatMap((list) => list ?? []));
  const out = wanted.filter((c) => (all || permitted.has(c)) && !refused.has(c));
  if (out.length === 0) return undefined;
  // Every category at all is allowed for an "all" request: XEP-0324 §3.3, an empty list.
  return requested.length === 0 && out.length === FIELD_CATEGORIES.length ? [] : out;
}

/** Decides a request from the rules of the thing's current owner (the caller's filter). */
export function evaluate(rules: readonly Rule[], req: AccessRequest): Verdict {
  let top = 0;
  for (const r of rules) if (r.kind === req.kind) top = Math.max(top, specificity(r, req.caller));
  if (top === 0) return UNKNOWN;
  // The most specific scope that has a rule for this caller decides alone.
  const level = rules.filter((r) => r.kind === req.kind && specificity(r, req.caller) === top);
  const allows = level.filter((r) => r.allow);
  const denies = level.filter((r) => !r.allow);
  const deny = (used: readonly Rule[]): Verdict => ({
    outcome: "deny",
    ...NONE,
    ruleIds: used.map((r) => r.id),
    onceRuleIds: used.filter((r) => r.once).map((r) => r.id),
  });
  // Deny beats allow at the same level.
  const whole = denies.filter(isWhole);
  if (whole.length > 0) return deny(whole);
  if (allows.length === 0) return deny(denies);
  if (req.kind === "friend") {
    return { outcome: "allow", ...NONE, ruleIds: allows.map((r) => r.id), onceRuleIds: onceOf(allows) };
  }

  // Nodes: XEP-0324 §3.3 — the answer lists the nodes that may be used.
  let nodes: NodeRef[];
  let used: Rule[];
  if (req.nodes.length > 0) {
    nodes = req.nodes.filter(
      (n) => !denies.some((d) => deniesNode(d, n)) && allows.some((a) => covers(a, n)),
    );
    used = allows.filter((a) => nodes.some((n) => covers(a, n)));
  } else if (allows.some((a) => a.nodes === null) && !denies.some(isNodeDeny)) {
    nodes = [];
    used = allows;
  } else {
    // The whole device was asked for, but only some nodes are permitted: list them.
    const listed: NodeRef[] = [];
    for (const a of allows) {
      for (const n of a.nodes ?? []) {
        if (!listed.some((l) => sameNode(l, n)) && !denies.some((d) => deniesNode(d, n))) listed.push(n);
      }
    }
    nodes = listed;
    used = allows.filter((a) => a.nodes?.some((n) => listed.some((l) => sameNode(l, n))) ?? false);
  }
  if (used.length === 0 || (req.nodes.length > 0 && nodes.length === 0)) return deny(denies);

  const itemDenies = denies.filter((d) => !isWhole(d));
  if (req.kind === "read") {
    const fieldNames = narrowNames(
      req.fieldNames,
      used.map((r) => r.fieldNames),
      itemDenies.map((r) => r.fieldNames),
    );
    const categories = narrowCategories(
      req.categories,
      used.map((r) => r.categories),
      itemDenies.map((r) => r.categories),
    );
    if (!fieldNames || !categories) return deny(itemDenies);
    return {
      outcome: "allow",
      nodes,
      fieldNames,
      categories,
      parameterNames: [],
      ruleIds: ids(used),
      onceRuleIds: onceOf(used),
    };
  }
  const parameterNames = narrowNames(
    req.parameterNames,
    used.map((r) => r.parameterNames),
    itemDenies.map((r) => r.parameterNames),
  );
  if (!parameterNames) return deny(itemDenies);
  return {
    outcome: "allow",
    nodes,
    fieldNames: [],
    categories: [],
    parameterNames,
    ruleIds: ids(used),
    onceRuleIds: onceOf(used),
  };
}

const ids = (rules: readonly Rule[]) => rules.map((r) => r.id);
const onceOf = (rules: readonly Rule[]) => rules.filter((r) => r.once).map((r) => r.id);

/** The verdict for the owner, the service itself, or an unclaimed thing under "allow": everything. */
export const ALLOW_ALL: Verdict = { outcome: "allow", ...NONE, ruleIds: [], onceRuleIds: [] };
export const DENY_ALL: Verdict = { outcome: "deny", ...NONE, ruleIds: [], onceRuleIds: [] };
