/**
 * The XSF provisioning wire format (`urn:xmpp:iot:provisioning`) spoken between things and a
 * provisioning server: isFriend, canRead, canControl (with narrowing), clearCache and the
 * friend/unfriend recommendations. Pure: no I/O, shared by the broker's provisioning service and
 * the device SDK (firmware/). Bad input is a `bad-request` whose text names what is wrong.
 * References: XEP-0324 §3.1 (isFriend, friend, unfriend), §3.3 (canRead, narrowing), §3.4
 * (canControl, `<parameter name/>`), §3.5 (clearCache as iq set since 0.3), §7 (schema:
 * `jid` and `result` required, `secondaryTrustAllowed` default false, xs:boolean);
 * XEP-0323 §3.2 (field-type flags, tokens), XEP-0326 §3.1 (node attributes).
 */
import { Element } from "ltx";
import {
  type FieldCategory,
  readCategoryFlags,
  writeCategoryFlags,
} from "../extensions/sensor-data/categories.ts";
import { type NodeRef, readNodeRefs, writeNodeRef } from "../extensions/sensor-data/node-ref.ts";
import { readTokens, type Tokens, writeTokens } from "../extensions/sensor-data/tokens.ts";
import { StanzaError } from "../server/xml/errors.ts";

export const NS_PROVISIONING = "urn:xmpp:iot:provisioning";

export interface CanReadQuery {
  readonly jid: string;
  readonly categories: readonly FieldCategory[];
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly tokens: Tokens;
}

/** XEP-0324 §3.3: empty lists = everything requested is allowed. */
export interface CanReadAnswer {
  readonly jid: string;
  readonly result: boolean;
  readonly categories: readonly FieldCategory[];
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
}

export interface CanControlQuery {
  readonly jid: string;
  readonly nodes: readonly NodeRef[];
  readonly parameterNames: readonly string[];
  readonly tokens: Tokens;
}

/** XEP-0324 §3.4: empty lists = everything requested is allowed. */
export interface CanControlAnswer {
  readonly jid: string;
  readonly result: boolean;
  readonly nodes: readonly NodeRef[];
  readonly parameterNames: readonly string[];
}

/** Bounds on what one request may list: a thing that needs more is asking for "everything". */
export const MAX_LISTED_NODES = 256;
export const MAX_LISTED_NAMES = 256;
export const MAX_NAME_LENGTH = 1024;
export const MAX_JID_LENGTH = 3071; // RFC 7622 §3.1: three parts of at most 1023 octets

const bad = (text: string) => new StanzaError("bad-request", text);

function expectElement(el: Element, name: string): void {
  if (el.name !== name) throw bad(`expected <${name}/>, got <${el.name}/>`);
  const ns = el.attrs.xmlns;
  if (ns !== undefined && ns !== NS_PROVISIONING) throw bad(`<${name}/> is not in ${NS_PROVISIONING}`);
}

/** XEP-0324 §7: `jid` is required on every element that names the other party. */
function requiredJid(el: Element): string {
  const jid = el.attrs.jid;
  if (typeof jid !== "string" || jid.length === 0) throw bad(`<${el.name}/> needs a jid attribute`);
  if (jid.length > MAX_JID_LENGTH) throw bad(`<${el.name}/> jid is longer than ${MAX_JID_LENGTH} characters`);
  return jid;
}

/** xs:boolean (XML Schema Part 2 §3.2.2): true, false, 1, 0. */
function booleanAttr(el: Element, attr: string, fallback?: boolean): boolean {
  const v = el.attrs[attr];
  if (v === undefined) {
    if (fallback === undefined) throw bad(`<${el.name}/> needs a ${attr} attribute`);
    return fallback;
  }
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw bad(`${attr}='${v}' is not a boolean`);
}

function nodesOf(el: Element): NodeRef[] {
  const nodes = readNodeRefs(el);
  if (nodes.length > MAX_LISTED_NODES) throw bad(`more than ${MAX_LISTED_NODES} nodes listed`);
  return nodes;
}

/** `<field name/>` (canRead) or `<parameter name/>` (canControl) children, in document order. */
function namesOf(el: Element, childName: "field" | "parameter"): string[] {
  const names: string[] = [];
  for (const child of el.getChildren(childName)) {
    const name = child.attrs.name;
    if (typeof name !== "string" || name.length === 0) throw bad(`<${childName}/> needs a name attribute`);
    if (name.length > MAX_NAME_LENGTH)
      throw bad(`<${childName}/> name is longer than ${MAX_NAME_LENGTH} characters`);
    if (!names.includes(name)) names.push(name);
    if (names.length > MAX_LISTED_NAMES) throw bad(`more than ${MAX_LISTED_NAMES} ${childName}s listed`);
  }
  return names;
}

function appendNames(el: Element, childName: "field" | "parameter", names: readonly string[]): void {
  for (const name of names) el.c(childName, { name });
}

function appendNodes(el: Element, nodes: readonly NodeRef[]): void {
  for (const node of nodes) writeNodeRef(el, node);
}

// ---------------------------------------------------------------------------------------------
// isFriend (iq get thing→server) and isFriendResponse. XEP-0324 §3.1

export function encodeIsFriend(jid: string): Element {
  return new Element("isFriend", { xmlns: NS_PROVISIONING, jid });
}

export function decodeIsFriend(el: Element): { jid: string } {
  expectElement(el, "isFriend");
  return { jid: requiredJid(el) };
}

export function encodeIsFriendResponse(jid: string, result: boolean, secondaryTrustAllowed = false): Element {
  const attrs: Record<string, string> = { xmlns: NS_PROVISIONING, jid, result: String(result) };
  // XEP-0324 §7: default false, so only the permissive value needs saying.
  if (secondaryTrustAllowed) attrs.secondaryTrustAllowed = "true";
  return new Element("isFriendResponse", attrs);
}

export function decodeIsFriendResponse(el: Element): {
  jid: string;
  result: boolean;
  secondaryTrustAllowed: boolean;
} {
  expectElement(el, "isFriendResponse");
  return {
    jid: requiredJid(el),
    result: booleanAttr(el, "result"),
    secondaryTrustAllowed: booleanAttr(el, "secondaryTrustAllowed", false),
  };
}

// ---------------------------------------------------------------------------------------------
// canRead / canReadResponse. XEP-0324 §3.3

export function encodeCanRead(q: CanReadQuery): Element {
  const el = new Element("canRead", { xmlns: NS_PROVISIONING, jid: q.jid });
  writeCategoryFlags(el, q.categories);
  writeTokens(el, q.tokens);
  appendNodes(el, q.nodes);
  appendNames(el, "field", q.fieldNames);
  return el;
}

export function decodeCanRead(el: Element): CanReadQuery {
  expectElement(el, "canRead");
  return {
    jid: requiredJid(el),
    categories: readCategoryFlags(el),
    nodes: nodesOf(el),
    fieldNames: namesOf(el, "field"),
    tokens: readTokens(el),
  };
}

export function encodeCanReadResponse(a: CanReadAnswer): Element {
  const el = new Element("canReadResponse", { xmlns: NS_PROVISIONING, jid: a.jid, result: String(a.result) });
  writeCategoryFlags(el, a.categories);
  appendNodes(el, a.nodes);
  appendNames(el, "field", a.fieldNames);
  return el;
}

export function decodeCanReadResponse(el: Element): CanReadAnswer {
  expectElement(el, "canReadResponse");
  return {
    jid: requiredJid(el),
    result: booleanAttr(el, "result"),
    categories: readCategoryFlags(el),
    nodes: nodesOf(el),
    fieldNames: namesOf(el, "field"),
  };
}

// ---------------------------------------------------------------------------------------------
// canControl / canControlResponse. XEP-0324 §3.4: parameters are `<parameter name/>` children.

export function encodeCanControl(q: CanControlQuery): Element {
  const el = new Element("canControl", { xmlns: NS_PROVISIONING, jid: q.jid });
  writeTokens(el, q.tokens);
  appendNodes(el, q.nodes);
  appendNames(el, "parameter", q.parameterNames);
  return el;
}

export function decodeCanControl(el: Element): CanControlQuery {
  expectElement(el, "canControl");
  return {
    jid: requiredJid(el),
    nodes: nodesOf(el),
    parameterNames: namesOf(el, "parameter"),
    tokens: readTokens(el),
  };
}

export function encodeCanControlResponse(a: CanControlAnswer): Element {
  const el = new Element("canControlResponse", {
    xmlns: NS_PROVISIONING,
    jid: a.jid,
    result: String(a.result),
  });
  appendNodes(el, a.nodes);
  appendNames(el, "parameter", a.parameterNames);
  return el;
}

export function decodeCanControlResponse(el: Element): CanControlAnswer {
  expectElement(el, "canControlResponse");
  return {
    jid: requiredJid(el),
    result: booleanAttr(el, "result"),
    nodes: nodesOf(el),
    parameterNames: namesOf(el, "parameter"),
  };
}

// ---------------------------------------------------------------------------------------------
// clearCache (iq set server→thing since 0.3) and its response. XEP-0324 §3.5

export function encodeClearCache(): Element {
  return new Element("clearCache", { xmlns: NS_PROVISIONING });
}

export function encodeClearCacheResponse(): Element {
  return new Element("clearCacheResponse", { xmlns: NS_PROVISIONING });
}

// ---------------------------------------------------------------------------------------------
// friend / unfriend recommendations (message server→thing). XEP-0324 §3.1; 0.3 renamed Friend→friend.

export function encodeFriend(jid: string): Element {
  return new Element("friend", { xmlns: NS_PROVISIONING, jid });
}

export function encodeUnfriend(jid: string): Element {
  return new Element("unfriend", { xmlns: NS_PROVISIONING, jid });
}

export function decodeFriendship(el: Element): { kind: "friend" | "unfriend"; jid: string } {
  if (el.name !== "friend" && el.name !== "unfriend")
    throw bad(`expected <friend/> or <unfriend/>, got <${el.name}/>`);
  expectElement(el, el.name);
  return { kind: el.name, jid: requiredJid(el) };
}
