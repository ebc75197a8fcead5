/**
 * The read-out request (`req`) and its cancellation, and the filter both sides apply with it.
 * References: XEP-0323 §3.1 (req, seqnr required and unique per client), §3.3 (field-type flags),
 * §3.5 (node elements, field hints: the device may ignore them, so the client filters too),
 * §3.6 (from/to interval for historical values, when for a scheduled read-out), §3.7 (tokens),
 * §3.8 (cancel / cancelled), schema (req: node and field in any order); digest §2.1.
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { formatXsDateTime, parseXsInteger } from "../data-forms/xs-types.ts";
import { readDateTimeAttr } from "./attributes.ts";
import { type FieldCategory, readCategoryFlags, writeCategoryFlags } from "./categories.ts";
import type { SensorField } from "./fields.ts";
import { NS_SENSOR_DATA } from "./namespace.ts";
import { type NodeRef, readNodeRefs, requestCoversNode, writeNodeRef } from "./node-ref.ts";
import { readTokens, type Tokens, writeTokens } from "./tokens.ts";

export interface ReadoutRequest {
  readonly seqnr: number;
  /** [] = all categories. */
  readonly categories: readonly FieldCategory[];
  /** [] = the whole device. */
  readonly nodes: readonly NodeRef[];
  /** [] = every field; otherwise hints. */
  readonly fieldNames: readonly string[];
  readonly from?: Date;
  readonly to?: Date;
  readonly when?: Date;
  readonly tokens: Tokens;
}

export const REQUEST_LIMITS = { fieldNames: 256, fieldNameLength: 1024 } as const;

const bad = (text: string) => new StanzaError("bad-request", text);

function expectElement(el: Element, name: string): void {
  if (el.getName() !== name || el.getNS() !== NS_SENSOR_DATA) {
    throw bad(`expected <${name} xmlns='${NS_SENSOR_DATA}'/>`);
  }
}

/** seqnr is an xs:int and required on every sensor-data element that has it. */
export function readSeqnr(el: Element): number {
  const v = el.attrs.seqnr;
  if (v === undefined) throw bad(`<${el.getName()}/> has no seqnr`);
  const n = parseXsInteger(String(v), "int");
  if (n === undefined) throw bad(`seqnr '${String(v)}' is not a 32-bit integer`);
  return Number(n);
}

/** Reads a `<req/>`. Throws bad-request naming the problem (seqnr, dates, nodes, limits). */
export function decodeReadoutRequest(req: Element): ReadoutRequest {
  expectElement(req, "req");
  const seqnr = readSeqnr(req);
  const categories = readCategoryFlags(req);
  const nodes = readNodeRefs(req);
  const fieldNames: string[] = [];
  for (const field of req.getChildElements()) {
    if (field.getName() !== "field") continue;
    const name = field.attrs.name;
    if (typeof name !== "string") throw bad("a field element has no name"); // schema: required
    if (name.length > REQUEST_LIMITS.fieldNameLength) throw bad("a field name is too long");
    if (fieldNames.length >= REQUEST_LIMITS.fieldNames) {
      throw bad(`more than ${REQUEST_LIMITS.fieldNames} field names in one request`);
    }
    if (!fieldNames.includes(name)) fieldNames.push(name);
  }
  const from = readDateTimeAttr(req, "from");
  const to = readDateTimeAttr(req, "to");
  const when = readDateTimeAttr(req, "when");
  if (from && to && from.getTime() > to.getTime()) throw bad("from is after to");
  return {
    seqnr,
    categories,
    nodes,
    fieldNames,
    ...(from && { from }),
    ...(to && { to }),
    ...(when && { when }),
    tokens: readTokens(req),
  };
}

export function encodeReadoutRequest(r: ReadoutRequest): Element {
  const req = new Element("req", { xmlns: NS_SENSOR_DATA, seqnr: String(r.seqnr) });
  writeCategoryFlags(req, r.categories);
  if (r.from) req.attrs.from = formatXsDateTime(r.from);
  if (r.to) req.attrs.to = formatXsDateTime(r.to);
  if (r.when) req.attrs.when = formatXsDateTime(r.when);
  writeTokens(req, r.tokens);
  for (const node of r.nodes) writeNodeRef(req, node);
  for (const name of r.fieldNames) req.c("field", { name });
  return req;
}

/** XEP-0323 §3.8: the client cancels a (queued) read-out. */
export function encodeCancel(seqnr: number): Element {
  return new Element("cancel", { xmlns: NS_SENSOR_DATA, seqnr: String(seqnr) });
}

export function decodeCancel(el: Element): number {
  expectElement(el, "cancel");
  return readSeqnr(el);
}

/** XEP-0323 §3.8: the device's answer to a cancel. */
export function encodeCancelled(seqnr: number): Element {
  return new Element("cancelled", { xmlns: NS_SENSOR_DATA, seqnr: String(seqnr) });
}

/**
 * Whether a field answers the request: one of the requested nodes (any if none), one of the
 * requested names (any if none), and at least one requested category (any if none; a field that
 * declares no category is never filtered out by category). XEP-0323 §3.5: devices may ignore
 * the hints, so clients use this too. Fields of sub-nodes of a requested node are not recognised
 * here (the codec does not know the node tree).
 */
export function matchesRequest(
  field: SensorField,
  r: Pick<ReadoutRequest, "nodes" | "fieldNames" | "categories">,
): boolean {
  if (r.nodes.length > 0) {
    const node = field.node;
    if (!node || !r.nodes.some((n) => requestCoversNode(n, node))) return false;
  }
  if (r.fieldNames.length > 0 && !r.fieldNames.includes(field.name)) return false;
  if (r.categories.length > 0 && field.categories.length > 0) {
    // §3.3: a request's flags are a union, so one shared category is enough.
    if (!field.categories.some((c) => r.categories.includes(c))) return false;
  }
  return true;
}
