/**
 * Node references: which node behind a JID (a concentrator's) a request or a value is about.
 * Shared by sensor data, control, provisioning and concentrators.
 * References: XEP-0323 §3.5 and schema (node: nodeId required, sourceId and cacheType optional);
 * XEP-0326 §3.1 (nodeId unique within a cacheType within a source; a missing attribute is the
 * empty string); digest §1.1.
 */
import type { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";

export interface NodeRef {
  readonly nodeId: string;
  readonly sourceId?: string;
  readonly cacheType?: string;
}

/** What one request may name; requests come from anyone who may talk to the device. */
export const NODE_LIMITS = { nodesPerRequest: 256, attributeLength: 1024 } as const;

const bad = (text: string) => new StanzaError("bad-request", text);

function attr(el: Element, name: string): string | undefined {
  const v = el.attrs[name];
  if (v === undefined) return undefined;
  const s = String(v);
  if (s.length > NODE_LIMITS.attributeLength) {
    throw bad(`${name} is longer than ${NODE_LIMITS.attributeLength} characters`);
  }
  return s;
}

/** One `<node nodeId sourceId? cacheType?>` element (any namespace). */
export function readNodeRef(el: Element): NodeRef {
  const nodeId = attr(el, "nodeId");
  if (nodeId === undefined) throw bad("a node element has no nodeId"); // XEP-0323 schema: required
  const sourceId = attr(el, "sourceId");
  const cacheType = attr(el, "cacheType");
  return {
    nodeId,
    ...(sourceId !== undefined && { sourceId }),
    ...(cacheType !== undefined && { cacheType }),
  };
}

/** The `<node/>` children of a request, in document order. */
export function readNodeRefs(parent: Element): NodeRef[] {
  const refs: NodeRef[] = [];
  for (const child of parent.getChildElements()) {
    if (child.getName() !== "node") continue;
    if (refs.length >= NODE_LIMITS.nodesPerRequest) {
      throw bad(`more than ${NODE_LIMITS.nodesPerRequest} nodes in one request`);
    }
    refs.push(readNodeRef(child));
  }
  return refs;
}

/** Only the attributes that are set; a missing attribute already means "". */
export function nodeRefAttrs(ref: NodeRef): Record<string, string> {
  const attrs: Record<string, string> = { nodeId: ref.nodeId };
  if (ref.sourceId) attrs.sourceId = ref.sourceId;
  if (ref.cacheType) attrs.cacheType = ref.cacheType;
  return attrs;
}

/** Appends `<node .../>` to `parent` (it inherits the parent's namespace) and returns it. */
export function writeNodeRef(parent: Element, ref: NodeRef): Element {
  return parent.c("node", nodeRefAttrs(ref));
}

/** XEP-0326 §3.1: the triple identifies a node; a missing attribute equals "". */
export function sameNode(a: NodeRef, b: NodeRef): boolean {
  return (
    a.nodeId === b.nodeId &&
    (a.sourceId ?? "") === (b.sourceId ?? "") &&
    (a.cacheType ?? "") === (b.cacheType ?? "")
  );
}

/**
 * Whether a node named in a request covers `node`. Digest §1.1: a request giving only nodeId
 * addresses every node with that id, so unset sourceId/cacheType in the request match anything.
 */
export function requestCoversNode(requested: NodeRef, node: NodeRef): boolean {
  if (requested.nodeId !== node.nodeId) return false;
  if (requested.sourceId && requested.sourceId !== (node.sourceId ?? "")) return false;
  if (requested.cacheType && requested.cacheType !== (node.cacheType ?? "")) return false;
  return true;
}

/** A stable text key for maps and sets of nodes. */
export function nodeKey(ref: NodeRef): string {
  return JSON.stringify([ref.sourceId ?? "", ref.cacheType ?? "", ref.nodeId]);
}
