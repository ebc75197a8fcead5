/**
 * Client helpers for XEP-0326 basics over a StanzaPort: ask, check the result code, decode.
 * References: XEP-0326 §3.4 (result codes; an XSF concentrator may answer a failure inside an
 * iq result or an iq error), §3.5.1, §3.5.2, §3.5.9, §3.5.10.
 */
import { Element } from "ltx";
import type { NodeRef } from "../sensor-data/node-ref.ts";
import type { StanzaPort } from "../sensor-data/port.ts";
import {
  decodeContainsNodeResponse,
  decodeDataSourcesResponse,
  decodeGetCapabilitiesResponse,
  decodeGetNodeResponse,
  decodeNodesResponse,
  decodeResult,
  encodeCommand,
  encodeContainsNode,
  encodeGetChildNodes,
  encodeGetNode,
  encodeGetRootNodes,
  type NodeQueryFlags,
} from "./commands.ts";
import { type DataSourceInfo, type NodeInfo, NS_CONCENTRATORS, type ResultCode } from "./model.ts";

/** A concentrator answered with a result code other than OK. */
export class ConcentratorResultError extends Error {
  readonly result: ResultCode;
  constructor(command: string, result: ResultCode) {
    super(`${command}: ${result}`);
    this.name = "ConcentratorResultError";
    this.result = result;
  }
}

async function ask(port: StanzaPort, to: string, type: "get" | "set", request: Element, timeoutMs?: number) {
  const command = request.getName();
  const iq = new Element("iq", { type, to, id: `cc-${Math.random().toString(36).slice(2, 12)}` });
  iq.cnode(request);
  const result = await port.request(iq, timeoutMs);
  const response = result.getChild(`${command}Response`, NS_CONCENTRATORS);
  if (!response) throw new Error(`${to} answered ${command} without a ${command}Response`);
  const code = decodeResult(response);
  if (code !== "OK") throw new ConcentratorResultError(command, code);
  return response;
}

export async function getCapabilities(port: StanzaPort, to: string): Promise<string[]> {
  return decodeGetCapabilitiesResponse(await ask(port, to, "get", encodeCommand("getCapabilities")));
}

export async function getAllDataSources(port: StanzaPort, to: string): Promise<DataSourceInfo[]> {
  return decodeDataSourcesResponse(await ask(port, to, "get", encodeCommand("getAllDataSources")));
}

export async function getRootNodes(
  port: StanzaPort,
  to: string,
  sourceId: string,
  flags?: Partial<NodeQueryFlags>,
): Promise<NodeInfo[]> {
  return decodeNodesResponse(await ask(port, to, "get", encodeGetRootNodes(sourceId, flags)));
}

export async function getChildNodes(
  port: StanzaPort,
  to: string,
  ref: NodeRef,
  flags?: Partial<NodeQueryFlags>,
): Promise<NodeInfo[]> {
  return decodeNodesResponse(await ask(port, to, "get", encodeGetChildNodes(ref, flags)));
}

export async function getNode(
  port: StanzaPort,
  to: string,
  ref: NodeRef,
  flags?: Partial<NodeQueryFlags>,
): Promise<NodeInfo> {
  return decodeGetNodeResponse(await ask(port, to, "get", encodeGetNode(ref, flags)));
}

export async function containsNode(port: StanzaPort, to: string, ref: NodeRef): Promise<boolean> {
  return decodeContainsNodeResponse(await ask(port, to, "get", encodeContainsNode(ref)));
}
