/**
 * XEP-0326 basic commands: requests and `…Response` elements for capabilities, data sources,
 * node lookup and node trees, and the NotImplemented answer for everything else.
 * References: XEP-0326 §3.4 (result codes), §3.5.1 (getCapabilities → value*), §3.5.2–§3.5.4
 * (getAllDataSources, getRootDataSources, getChildDataSources sourceId → dataSource*), §3.5.5
 * (containsNode → true/false), §3.5.7 (getNode → node information on the response), §3.5.9–10
 * (getRootNodes sourceId, getChildNodes node → node*; parameters and messages flags), §3.6 (an
 * unknown command gets `<{name}Response result='NotImplemented'/>`); digest §5.2.
 */
import { Element } from "ltx";
import { StanzaError, type StanzaErrorCondition } from "../../server/xml/errors.ts";
import { parseXsBoolean } from "../data-forms/xs-types.ts";
import { readBooleanAttr } from "../sensor-data/attributes.ts";
import { type NodeRef, nodeRefAttrs, readNodeRef } from "../sensor-data/node-ref.ts";
import {
  type DataSourceInfo,
  MAX_LIST_ENTRIES,
  type NodeInfo,
  NS_CONCENTRATORS,
  RESULT_CODES,
  type ResultCode,
  readDataSource,
  readNodeInfo,
  writeDataSource,
  writeNodeInfo,
  writeNodeInfoAttrs,
} from "./model.ts";

/** The commands this codec speaks; a concentrator lists those it supports in getCapabilities. */
export const CONCENTRATOR_COMMANDS = [
  "getCapabilities",
  "getAllDataSources",
  "getRootDataSources",
  "getChildDataSources",
  "containsNode",
  "getNode",
  "getRootNodes",
  "getChildNodes",
] as const;

export type ConcentratorCommand = (typeof CONCENTRATOR_COMMANDS)[number];

const bad = (text: string) => new StanzaError("bad-request", text);

/** A request element: `<{name} xmlns=… …attrs/>`. */
export function encodeCommand(name: string, attrs: Record<string, string> = {}): Element {
  return new Element(name, { xmlns: NS_CONCENTRATORS, ...attrs });
}

/** `<{name}Response result=…/>`. */
export function encodeResponse(command: string, result: ResultCode = "OK"): Element {
  return new Element(`${command}Response`, { xmlns: NS_CONCENTRATORS, result });
}

/** §3.6: the answer to a command the concentrator does not know or support. */
export function encodeNotImplemented(command: string): Element {
  return encodeResponse(command, "NotImplemented");
}

const RESULT_CONDITIONS: Record<Exclude<ResultCode, "OK">, StanzaErrorCondition> = {
  NotFound: "item-not-found",
  InsufficientPrivileges: "forbidden",
  Locked: "conflict",
  NotImplemented: "feature-not-implemented",
  FormError: "bad-request",
  OtherError: "undefined-condition",
};

/**
 * A failed command as a StanzaError: a standard condition (for generic clients; digest §13) and
 * the XEP-0326 `…Response result=…` inside the error element (for XEP-0326 clients).
 */
export function concentratorError(
  command: string,
  result: Exclude<ResultCode, "OK">,
  text?: string,
): StanzaError {
  return new StanzaError(RESULT_CONDITIONS[result], text, { appElement: encodeResponse(command, result) });
}

/** Reads the `result` of a `…Response`; missing counts as OK. */
export function decodeResult(el: Element): ResultCode {
  const result = el.attrs.result ?? "OK";
  if (!(RESULT_CODES as readonly string[]).includes(result))
    throw bad(`unknown result code '${String(result)}'`);
  return result as ResultCode;
}

/** The request flags of node queries (§3.5.7: parameters, messages). */
export interface NodeQueryFlags {
  readonly parameters: boolean;
  readonly messages: boolean;
}

export function decodeNodeQueryFlags(el: Element): NodeQueryFlags {
  return {
    parameters: readBooleanAttr(el, "parameters") ?? false,
    messages: readBooleanAttr(el, "messages") ?? false,
  };
}

function flagAttrs(flags?: Partial<NodeQueryFlags>): Record<string, string> {
  const attrs: Record<string, string> = {};
  if (flags?.parameters) attrs.parameters = "true";
  if (flags?.messages) attrs.messages = "true";
  return attrs;
}

// ---- getCapabilities ----

export function encodeGetCapabilitiesResponse(commands: readonly string[]): Element {
  const el = encodeResponse("getCapabilities");
  for (const c of commands) el.c("value").t(c);
  return el;
}

export function decodeGetCapabilitiesResponse(el: Element): string[] {
  return el
    .getChildElements()
    .filter((c) => c.getName() === "value")
    .slice(0, MAX_LIST_ENTRIES)
    .map((c) => c.text().trim());
}

// ---- data sources ----

export function encodeGetChildDataSources(sourceId: string): Element {
  return encodeCommand("getChildDataSources", { sourceId });
}

export function decodeSourceId(el: Element): string {
  const sourceId = el.attrs.sourceId;
  if (typeof sourceId !== "string") throw bad(`<${el.getName()}/> has no sourceId`);
  return sourceId;
}

/** For getAllDataSources, getRootDataSources and getChildDataSources. */
export function encodeDataSourcesResponse(
  command: "getAllDataSources" | "getRootDataSources" | "getChildDataSources",
  sources: readonly DataSourceInfo[],
): Element {
  const el = encodeResponse(command);
  for (const s of sources) writeDataSource(el, s);
  return el;
}

export function decodeDataSourcesResponse(el: Element): DataSourceInfo[] {
  return el
    .getChildElements()
    .filter((c) => c.getName() === "dataSource")
    .slice(0, MAX_LIST_ENTRIES)
    .map(readDataSource);
}

// ---- single node: containsNode, getNode ----

export function encodeContainsNode(ref: NodeRef): Element {
  return encodeCommand("containsNode", nodeRefAttrs(ref));
}

export function encodeGetNode(ref: NodeRef, flags?: Partial<NodeQueryFlags>): Element {
  return encodeCommand("getNode", { ...nodeRefAttrs(ref), ...flagAttrs(flags) });
}

/** The node a containsNode/getNode/getChildNodes request names (attributes on the request). */
export function decodeNodeRequest(el: Element): NodeRef & NodeQueryFlags {
  return { ...readNodeRef(el), ...decodeNodeQueryFlags(el) };
}

export function encodeContainsNodeResponse(found: boolean): Element {
  return encodeResponse("containsNode").t(found ? "true" : "false");
}

export function decodeContainsNodeResponse(el: Element): boolean {
  const found = parseXsBoolean(el.text());
  if (found === undefined) throw bad(`'${el.text().trim()}' is not a boolean`);
  return found;
}

/** §3.5.7: the node information sits on the response element itself. */
export function encodeGetNodeResponse(node: NodeInfo): Element {
  return writeNodeInfoAttrs(encodeResponse("getNode"), node);
}

export function decodeGetNodeResponse(el: Element): NodeInfo {
  const { result: _result, xmlns: _xmlns, ...attrs } = el.attrs;
  const copy = new Element("node", attrs);
  for (const child of el.children) copy.cnode(child);
  return readNodeInfo(copy);
}

// ---- node lists: getRootNodes, getChildNodes ----

export function encodeGetRootNodes(sourceId: string, flags?: Partial<NodeQueryFlags>): Element {
  return encodeCommand("getRootNodes", { sourceId, ...flagAttrs(flags) });
}

export function encodeGetChildNodes(ref: NodeRef, flags?: Partial<NodeQueryFlags>): Element {
  return encodeCommand("getChildNodes", { ...nodeRefAttrs(ref), ...flagAttrs(flags) });
}

export function encodeNodesResponse(
  command: "getRootNodes" | "getChildNodes",
  nodes: readonly NodeInfo[],
): Element {
  const el = encodeResponse(command);
  for (const n of nodes) writeNodeInfo(el, n);
  return el;
}

export function decodeNodesResponse(el: Element): NodeInfo[] {
  return el
    .getChildElements()
    .filter((c) => c.getName() === "node")
    .slice(0, MAX_LIST_ENTRIES)
    .map(readNodeInfo);
}
