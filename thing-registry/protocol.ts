/**
 * The XML of the thing registry (`urn:xmpp:iot:discovery`): tags, node attributes, search
 * operators and results, read strictly (bad input is a bad-request whose text names the tag).
 * References: XEP-0347 §3.6–§3.8 (register, node attributes), §3.9 (mine, claimed), §3.13–§3.14
 * (update), §3.15 (search, found), §9 (schema: xs:boolean, xs:double, required attributes).
 */
import { Element } from "ltx";
import { StanzaError } from "../server/xml/errors.ts";
import {
  formatDouble,
  NUM_COMPARE_OPS,
  nameKey,
  parseDouble,
  type SearchOp,
  STR_COMPARE_OPS,
  stringValueProblem,
  type Tag,
  tagNameProblem,
} from "./tags.ts";

export const NS_DISCOVERY = "urn:xmpp:iot:discovery";

/** XEP-0347 §3.8: a thing behind a concentrator; absent attributes are the empty string. */
export interface NodeRef {
  readonly nodeId: string;
  readonly sourceId: string;
  readonly cacheType: string;
}

export const NO_NODE: NodeRef = { nodeId: "", sourceId: "", cacheType: "" };

/** Longest node attribute we store (XEP-0326 sets no limit; this keeps rows small). */
const MAX_NODE_ATTR = 1024;

const bad = (text: string) => new StanzaError("bad-request", text);

export function parseNode(el: Element): NodeRef {
  const node = {
    nodeId: el.attrs.nodeId ?? "",
    sourceId: el.attrs.sourceId ?? "",
    cacheType: el.attrs.cacheType ?? "",
  };
  for (const [attr, value] of Object.entries(node)) {
    if (value.length > MAX_NODE_ATTR) throw bad(`${attr} is longer than ${MAX_NODE_ATTR} characters`);
  }
  return node;
}

/** Only the node attributes that are set (XEP-0347 §3.9: "those of the attributes ... required"). */
export function nodeAttrs(node: NodeRef): Record<string, string> {
  const attrs: Record<string, string> = {};
  if (node.nodeId) attrs.nodeId = node.nodeId;
  if (node.sourceId) attrs.sourceId = node.sourceId;
  if (node.cacheType) attrs.cacheType = node.cacheType;
  return attrs;
}

/** xs:boolean: true, false, 1, 0. */
export function parseBool(el: Element, attr: string, fallback: boolean): boolean {
  const v = el.attrs[attr];
  if (v === undefined) return fallback;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw bad(`${attr}='${v}' is not a boolean`);
}

function required(el: Element, attr: string, what: string): string {
  const v = el.attrs[attr];
  if (v === undefined) throw bad(`${what}: the ${attr} attribute is missing`);
  return v;
}

function number(el: Element, attr: string, name: string): number {
  const text = required(el, attr, `tag ${name}`);
  const n = parseDouble(text);
  if (n === undefined) throw bad(`tag ${name}: ${attr}='${text}' is not a number`);
  return n;
}

function checkName(name: string): void {
  const problem = tagNameProblem(name);
  if (problem) throw bad(problem); // XEP-0347 §5.2
}

function checkString(name: string, value: string): void {
  const problem = stringValueProblem(name, value);
  if (problem) throw bad(problem); // XEP-0347 §5.2
}

/**
 * The <str/> and <num/> children of register, mine and update. Names are unique
 * case-insensitively; anything else inside is refused.
 */
export function parseTags(el: Element): Tag[] {
  const tags: Tag[] = [];
  const seen = new Set<string>();
  for (const child of el.getChildElements()) {
    if (child.attrs.xmlns !== undefined && child.attrs.xmlns !== NS_DISCOVERY) {
      throw bad(`unexpected element <${child.name}/> in another namespace`);
    }
    if (child.name !== "str" && child.name !== "num") throw bad(`unexpected element <${child.name}/>`);
    const name = required(child, "name", `<${child.name}/>`);
    checkName(name);
    const key = nameKey(name);
    if (seen.has(key)) throw bad(`tag ${name} appears more than once`);
    seen.add(key);
    if (child.name === "str") {
      const value = required(child, "value", `tag ${name}`);
      checkString(name, value);
      tags.push({ type: "str", name, value });
    } else {
      tags.push({ type: "num", name, value: number(child, "value", name) });
    }
  }
  return tags;
}

export function tagElement(tag: Tag): Element {
  return tag.type === "str"
    ? new Element("str", { name: tag.name, value: tag.value })
    : new Element("num", { name: tag.name, value: formatDouble(tag.value) });
}

export interface SearchRequest {
  readonly offset: number;
  readonly maxCount: number | undefined;
  readonly operators: SearchOp[];
}

function nonNegativeInt(el: Element, attr: string): number | undefined {
  const v = el.attrs[attr];
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw bad(`${attr}='${v}' is not a non-negative integer`);
  return Number(v);
}

/** XEP-0347 §3.15, §9: a search with at least one operator. */
export function parseSearch(el: Element): SearchRequest {
  const offset = nonNegativeInt(el, "offset") ?? 0;
  const maxCount = nonNegativeInt(el, "maxCount");
  if (maxCount === 0) throw bad("maxCount must be positive");
  const operators: SearchOp[] = [];
  for (const child of el.getChildElements()) {
    const op = child.name;
    if (child.attrs.xmlns !== undefined && child.attrs.xmlns !== NS_DISCOVERY) {
      throw bad(`unexpected element <${op}/> in another namespace`);
    }
    const name = required(child, "name", `<${op}/>`);
    checkName(name);
    if ((STR_COMPARE_OPS as readonly string[]).includes(op)) {
      const value = required(child, "value", `tag ${name}`);
      checkString(name, value);
      operators.push({ op: op as (typeof STR_COMPARE_OPS)[number], name, value });
    } else if ((NUM_COMPARE_OPS as readonly string[]).includes(op)) {
      operators.push({
        op: op as (typeof NUM_COMPARE_OPS)[number],
        name,
        value: number(child, "value", name),
      });
    } else if (op === "strRange" || op === "strNRange") {
      const min = required(child, "min", `tag ${name}`);
      const max = required(child, "max", `tag ${name}`);
      checkString(name, min);
      checkString(name, max);
      const minIncluded = parseBool(child, "minIncluded", true);
      const maxIncluded = parseBool(child, "maxIncluded", true);
      operators.push({ op, name, min, minIncluded, max, maxIncluded });
    } else if (op === "numRange" || op === "numNRange") {
      const min = number(child, "min", name);
      const max = number(child, "max", name);
      const minIncluded = parseBool(child, "minIncluded", true);
      const maxIncluded = parseBool(child, "maxIncluded", true);
      operators.push({ op, name, min, minIncluded, max, maxIncluded });
    } else if (op === "strMask") {
      const value = required(child, "value", `tag ${name}`);
      const wildcard = required(child, "wildcard", `tag ${name}`);
      checkString(name, value);
      if (wildcard.length === 0) throw bad(`tag ${name}: the wildcard is empty`);
      operators.push({ op, name, value, wildcard });
    } else {
      throw bad(`unknown search operator <${op}/>`);
    }
  }
  if (operators.length === 0) throw bad("a search needs at least one operator"); // §9: minOccurs 1
  return { offset, maxCount, operators };
}

/** The operator as an element (clients, benchmarks, the portal). */
export function operatorElement(op: SearchOp): Element {
  const text = (v: string | number) => (typeof v === "number" ? formatDouble(v) : v);
  if ("min" in op) {
    return new Element(op.op, {
      name: op.name,
      min: text(op.min),
      minIncluded: String(op.minIncluded),
      max: text(op.max),
      maxIncluded: String(op.maxIncluded),
    });
  }
  if (op.op === "strMask")
    return new Element(op.op, { name: op.name, value: op.value, wildcard: op.wildcard });
  return new Element(op.op, { name: op.name, value: text(op.value) });
}
