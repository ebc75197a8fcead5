/**
 * A thing hosting several nodes behind one JID (a concentrator): which nodes exist, and the basic
 * XEP-0326 queries about them (capabilities, data sources, root and child nodes, node
 * information). Browsing is for the owner and friends (as provisioning decides); others get
 * InsufficientPrivileges.
 * References: XEP-0326 §3.1 (data sources and nodes; sourceId, cacheType, nodeId identify a node;
 * MeteringTopology is the source every concentrator has), §3.2 (node information), §3.4 (result
 * codes), §3.5.1 (getCapabilities), §3.5.2–§3.5.4 (data sources), §3.5.5–§3.5.9 (containsNode,
 * getNode, getRootNodes, getChildNodes), §3.6 (NotImplemented for other commands); digest §1.1.
 */
import type { Element } from "ltx";
import {
  CONCENTRATOR_COMMANDS,
  concentratorError,
  type DataSourceInfo,
  decodeNodeRequest,
  decodeSourceId,
  encodeContainsNodeResponse,
  encodeDataSourcesResponse,
  encodeGetCapabilitiesResponse,
  encodeGetNodeResponse,
  encodeNodesResponse,
  encodeNotImplemented,
  type NodeInfo,
  NS_CONCENTRATORS,
} from "../../extensions/concentrators/index.ts";
import { type NodeRef, requestCoversNode } from "../../extensions/sensor-data/index.ts";
import type { IqHandler } from "../xmpp/iq.ts";
import type { AccessDecider } from "./decisions.ts";
import { senderOf } from "./sender.ts";

export interface ConcentratorNode extends NodeRef {
  readonly displayName?: string;
  readonly nodeType?: string;
  /** The parent's nodeId (same source and cache type); undefined for a root node. */
  readonly parentId?: string;
  readonly isReadable?: boolean;
  readonly isControllable?: boolean;
}

export interface ConcentratorDeps {
  readonly nodes: readonly ConcentratorNode[];
  readonly decider: AccessDecider;
  onIq(type: "get" | "set", ns: string, name: string, handler: IqHandler): void;
}

/** §3.1: the data source every concentrator offers; nodes without a source belong to it. */
export const DEFAULT_SOURCE = "MeteringTopology";

/**
 * Every command the codec speaks (CONCENTRATOR_COMMANDS) is served; these other XEP-0326 commands
 * are answered NotImplemented (§3.6) rather than service-unavailable.
 */
const NOT_IMPLEMENTED = [
  "containsNodes",
  "getNodes",
  "getAllNodes",
  "getAncestors",
  "getNodeInheritance",
  "getNodeParametersForEdit",
  "setNodeParametersAfterEdit",
  "getAddableNodeTypes",
  "getNodeCommands",
  "getCommandParameters",
  "executeNodeCommand",
  "executeNodeQuery",
  "abortNodeQuery",
  "subscribe",
  "unsubscribe",
  "getDatabases",
];

export function startConcentratorServer(deps: ConcentratorDeps): { nodeExists(node: NodeRef): boolean } {
  const nodes = deps.nodes.map((n) => ({ ...n, sourceId: n.sourceId || DEFAULT_SOURCE }));
  const nodeExists = (ref: NodeRef) => nodes.some((n) => requestCoversNode(ref, n));
  const childrenOf = (parent: ConcentratorNode) =>
    nodes.filter(
      (n) =>
        n.parentId === parent.nodeId &&
        n.sourceId === parent.sourceId &&
        (n.cacheType ?? "") === (parent.cacheType ?? ""),
    );
  const info = (n: ConcentratorNode): NodeInfo => ({
    nodeId: n.nodeId,
    sourceId: n.sourceId ?? DEFAULT_SOURCE,
    ...(n.cacheType && { cacheType: n.cacheType }),
    state: "None",
    hasChildren: childrenOf(n).length > 0,
    ...(n.displayName !== undefined && { displayName: n.displayName }),
    ...(n.nodeType !== undefined && { nodeType: n.nodeType }),
    ...(n.parentId !== undefined && { parentId: n.parentId }),
    isReadable: n.isReadable ?? true,
    isControllable: n.isControllable ?? false,
    hasCommands: false,
  });
  const find = (command: string, ref: NodeRef) => {
    const node = nodes.find((n) => requestCoversNode(ref, n));
    if (!node) throw concentratorError(command, "NotFound", `no node ${ref.nodeId}`);
    return node;
  };
  const sources = (): DataSourceInfo[] =>
    [...new Set(nodes.map((n) => n.sourceId))].map((sourceId) => ({
      sourceId,
      name: sourceId,
      hasChildren: false,
    }));

  /** Registers a command; only friends (and the owner, the provisioning service) may browse. */
  const command = (name: string, answer: (payload: Element) => Element) =>
    deps.onIq("get", NS_CONCENTRATORS, name, async (iq) => {
      if (!(await deps.decider.isFriend(senderOf(iq)))) {
        throw concentratorError(name, "InsufficientPrivileges", "not a friend of this concentrator");
      }
      return answer(iq.getChild(name, NS_CONCENTRATORS)!);
    });

  command("getCapabilities", () => encodeGetCapabilitiesResponse(CONCENTRATOR_COMMANDS));
  command("getAllDataSources", () => encodeDataSourcesResponse("getAllDataSources", sources()));
  command("getRootDataSources", () => encodeDataSourcesResponse("getRootDataSources", sources()));
  command("getChildDataSources", (p) => {
    const sourceId = decodeSourceId(p);
    if (!sources().some((s) => s.sourceId === sourceId)) {
      throw concentratorError("getChildDataSources", "NotFound", `no data source ${sourceId}`);
    }
    return encodeDataSourcesResponse("getChildDataSources", []); // our sources are flat
  });
  command("containsNode", (p) => encodeContainsNodeResponse(nodeExists(decodeNodeRequest(p))));
  command("getNode", (p) => encodeGetNodeResponse(info(find("getNode", decodeNodeRequest(p)))));
  command("getRootNodes", (p) => {
    const sourceId = decodeSourceId(p);
    return encodeNodesResponse(
      "getRootNodes",
      nodes.filter((n) => n.sourceId === sourceId && n.parentId === undefined).map(info),
    );
  });
  command("getChildNodes", (p) => {
    const parent = find("getChildNodes", decodeNodeRequest(p));
    return encodeNodesResponse("getChildNodes", childrenOf(parent).map(info));
  });
  for (const name of NOT_IMPLEMENTED) {
    for (const type of ["get", "set"] as const)
      deps.onIq(type, NS_CONCENTRATORS, name, () => encodeNotImplemented(name));
  }
  return { nodeExists };
}
