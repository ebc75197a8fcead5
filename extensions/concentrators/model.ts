/**
 * XEP-0326 concentrator values: result codes, data sources and node information, and how they
 * sit in XML.
 * References: XEP-0326 §3.1 (data sources: sourceId, name, hasChildren, lastChanged), §3.2
 * (node information: nodeId, state, hasChildren required; displayName, nodeType, localId, logId,
 * cacheType, childrenOrdered, isReadable, isControllable, hasCommands, parentId,
 * parentCacheType, lastChanged optional; parameters and messages on request), §3.3 (node states),
 * §3.4 (the `result` attribute codes on every …Response); digest §5.1, §13 (error model).
 */
import type { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { formatXsDateTime, VALUE_TYPES, type ValueType } from "../data-forms/xs-types.ts";
import { readBooleanAttr, readDateTimeAttr } from "../sensor-data/attributes.ts";
import { type NodeRef, nodeRefAttrs } from "../sensor-data/node-ref.ts";

export const NS_CONCENTRATORS = "urn:xmpp:iot:concentrators";

/** XEP-0326 §3.4 result codes. */
export type ResultCode =
  | "OK"
  | "NotFound"
  | "InsufficientPrivileges"
  | "Locked"
  | "NotImplemented"
  | "FormError"
  | "OtherError";

export const RESULT_CODES: readonly ResultCode[] = [
  "OK",
  "NotFound",
  "InsufficientPrivileges",
  "Locked",
  "NotImplemented",
  "FormError",
  "OtherError",
];

/** XEP-0326 §3.3, in increasing severity. */
export type NodeState =
  | "None"
  | "Information"
  | "WarningSigned"
  | "WarningUnsigned"
  | "ErrorSigned"
  | "ErrorUnsigned";

export const NODE_STATES: readonly NodeState[] = [
  "None",
  "Information",
  "WarningSigned",
  "WarningUnsigned",
  "ErrorSigned",
  "ErrorUnsigned",
];

export interface DataSourceInfo {
  readonly sourceId: string;
  readonly name: string;
  readonly hasChildren: boolean;
  readonly lastChanged?: Date;
}

/** XEP-0326 §3.2: the XEP-0325 value types but date. */
export type NodeParameterType = Exclude<ValueType, "date">;

export const NODE_PARAMETER_TYPES: readonly NodeParameterType[] = VALUE_TYPES.filter(
  (t): t is NodeParameterType => t !== "date",
);

/** A node parameter as shown in node information (lexical value). */
export interface NodeParameter {
  readonly type: NodeParameterType;
  readonly id: string;
  readonly name: string;
  readonly value: string;
}

export interface NodeMessage {
  readonly timestamp: Date;
  readonly type: "Information" | "Warning" | "Error";
  readonly eventId?: string;
  readonly text: string;
}

export interface NodeInfo extends NodeRef {
  readonly state: NodeState;
  readonly hasChildren: boolean;
  readonly displayName?: string;
  readonly nodeType?: string;
  readonly isReadable?: boolean;
  readonly isControllable?: boolean;
  readonly hasCommands?: boolean;
  readonly parentId?: string;
  readonly parentCacheType?: string;
  readonly lastChanged?: Date;
  readonly parameters?: readonly NodeParameter[];
  readonly messages?: readonly NodeMessage[];
}

/** Most entries a decoded list answer may hold. */
export const MAX_LIST_ENTRIES = 10_000;

const bad = (text: string) => new StanzaError("bad-request", text);

function stringAttr(el: Element, name: string): string | undefined {
  const v = el.attrs[name];
  return v === undefined ? undefined : String(v);
}

export function writeDataSource(parent: Element, s: DataSourceInfo): Element {
  const attrs: Record<string, string> = {
    sourceId: s.sourceId,
    name: s.name,
    hasChildren: String(s.hasChildren),
  };
  if (s.lastChanged) attrs.lastChanged = formatXsDateTime(s.lastChanged);
  return parent.c("dataSource", attrs);
}

export function readDataSource(el: Element): DataSourceInfo {
  const sourceId = stringAttr(el, "sourceId");
  if (sourceId === undefined) throw bad("a dataSource has no sourceId");
  const lastChanged = readDateTimeAttr(el, "lastChanged");
  return {
    sourceId,
    name: stringAttr(el, "name") ?? sourceId,
    hasChildren: readBooleanAttr(el, "hasChildren") ?? false,
    ...(lastChanged && { lastChanged }),
  };
}

/** Puts the node information attributes (and parameters/messages children) on `el`. */
export function writeNodeInfoAttrs(el: Element, n: NodeInfo): Element {
  el.attrs = { ...el.attrs, ...nodeRefAttrs(n), state: n.state, hasChildren: String(n.hasChildren) };
  if (n.displayName !== undefined) el.attrs.displayName = n.displayName;
  if (n.nodeType !== undefined) el.attrs.nodeType = n.nodeType;
  for (const flag of ["isReadable", "isControllable", "hasCommands"] as const) {
    if (n[flag] !== undefined) el.attrs[flag] = String(n[flag]);
  }
  if (n.parentId !== undefined) el.attrs.parentId = n.parentId;
  if (n.parentCacheType !== undefined) el.attrs.parentCacheType = n.parentCacheType;
  if (n.lastChanged) el.attrs.lastChanged = formatXsDateTime(n.lastChanged);
  for (const p of n.parameters ?? []) el.c(p.type, { id: p.id, name: p.name, value: p.value });
  for (const m of n.messages ?? []) {
    const attrs: Record<string, string> = { timestamp: formatXsDateTime(m.timestamp), type: m.type };
    if (m.eventId !== undefined) attrs.eventId = m.eventId;
    el.c("message", attrs).t(m.text);
  }
  return el;
}

export function writeNodeInfo(parent: Element, n: NodeInfo): Element {
  return writeNodeInfoAttrs(parent.c("node"), n);
}

/** Reads node information from a `node` element or a getNodeResponse. */
export function readNodeInfo(el: Element): NodeInfo {
  // COMPAT: early XEP-0326 examples call the attribute `id`.
  const nodeId = stringAttr(el, "nodeId") ?? stringAttr(el, "id");
  if (nodeId === undefined) throw bad("node information has no nodeId");
  const state = stringAttr(el, "state") ?? "None";
  if (!(NODE_STATES as readonly string[]).includes(state)) throw bad(`unknown node state '${state}'`);
  const parameters: NodeParameter[] = [];
  const messages: NodeMessage[] = [];
  for (const child of el.getChildElements()) {
    const name = child.getName();
    if ((NODE_PARAMETER_TYPES as readonly string[]).includes(name)) {
      if (parameters.length >= MAX_LIST_ENTRIES) throw bad("too many node parameters");
      parameters.push({
        type: name as NodeParameterType,
        id: stringAttr(child, "id") ?? "",
        name: stringAttr(child, "name") ?? "",
        value: stringAttr(child, "value") ?? "",
      });
    } else if (name === "message") {
      if (messages.length >= MAX_LIST_ENTRIES) throw bad("too many node messages");
      const type = stringAttr(child, "type");
      const eventId = stringAttr(child, "eventId");
      messages.push({
        timestamp: readDateTimeAttr(child, "timestamp") ?? new Date(0),
        type: type === "Warning" || type === "Error" ? type : "Information",
        ...(eventId !== undefined && { eventId }),
        text: child.text(),
      });
    }
  }
  const optional = {
    sourceId: stringAttr(el, "sourceId"),
    cacheType: stringAttr(el, "cacheType"),
    displayName: stringAttr(el, "displayName"),
    nodeType: stringAttr(el, "nodeType"),
    isReadable: readBooleanAttr(el, "isReadable"),
    isControllable: readBooleanAttr(el, "isControllable"),
    hasCommands: readBooleanAttr(el, "hasCommands"),
    parentId: stringAttr(el, "parentId"),
    parentCacheType: stringAttr(el, "parentCacheType"),
    lastChanged: readDateTimeAttr(el, "lastChanged"),
  };
  const info: Record<string, unknown> = {
    nodeId,
    state,
    hasChildren: readBooleanAttr(el, "hasChildren") ?? false,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) info[k] = v;
  if (parameters.length > 0) info.parameters = parameters;
  if (messages.length > 0) info.messages = messages;
  return info as unknown as NodeInfo;
}
