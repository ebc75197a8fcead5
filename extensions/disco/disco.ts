/**
 * Service discovery: disco#info and disco#items for the domain, its components and accounts.
 * Identities and features come from the modules that registered them on each host.
 * References: XEP-0030 §3.1 (info), §4.1 (items), §3.2/§4.2 (item-not-found for unknown nodes),
 * §5 (accounts: identity category "account"), RFC 6121 §8.5.1 (say nothing about other accounts).
 * Modules answer for nodes of their hosts through the "disco-nodes" service (XEP-0030 §3.2, §4.2;
 * e.g. XEP-0050 §2.2 command lists).
 */
import { Element } from "ltx";
import type { Jid } from "../../server/jid.ts";
import type { Module } from "../../server/modules/module.ts";
import type { Host } from "../../server/routing/host-table.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { NS } from "../../server/xml/namespaces.ts";

export interface HostsService {
  get(domain: string): Host | undefined;
  each(fn: (host: Host) => void): void;
  components(): Host[];
}

/** What a module answers for one node of a host; throw StanzaError (e.g. forbidden) to refuse. */
export interface DiscoNode {
  /** disco#info children: <identity/> and <feature/> elements. */
  info?(from: Jid): Element[] | Promise<Element[]>;
  /** disco#items children: <item/> elements. */
  items?(from: Jid): Element[] | Promise<Element[]>;
}

/** The "disco-nodes" service: modules that depend on disco register the nodes they answer for. */
export interface DiscoNodes {
  add(domain: string, node: string, answer: DiscoNode): void;
}

export const DISCO_NODES_SERVICE = "disco-nodes";

/** XEP-0030 §3.2/§4.2: a node query is answered by its owner, or item-not-found. */
async function nodeQuery(
  nodes: ReadonlyMap<string, DiscoNode>,
  kind: "info" | "items",
  domain: string,
  node: string,
  from: Jid,
): Promise<Element> {
  const owner = nodes.get(nodeKey(domain, node));
  const children = kind === "info" ? owner?.info?.(from) : owner?.items?.(from);
  if (!children) throw new StanzaError("item-not-found", `no node ${node}`);
  const query = new Element("query", { xmlns: kind === "info" ? NS.discoInfo : NS.discoItems, node });
  for (const child of await children) query.cnode(child);
  return query;
}

function nodeKey(domain: string, node: string): string {
  return `${domain}\n${node}`;
}

function infoOf(host: Host): Element {
  const query = new Element("query", { xmlns: NS.discoInfo });
  for (const id of host.identities) {
    query.c("identity", { category: id.category, type: id.type, ...(id.name ? { name: id.name } : {}) });
  }
  for (const feature of [...host.features].sort()) query.c("feature", { var: feature });
  return query;
}

export const discoModule: Module = {
  name: "disco",
  xeps: ["0030"],
  start(api) {
    const hosts = api.use<HostsService>("hosts");
    const nodes = new Map<string, DiscoNode>();
    api.provide<DiscoNodes>(DISCO_NODES_SERVICE, {
      add(domain, node, answer) {
        const key = nodeKey(domain, node);
        if (nodes.has(key)) throw new Error(`disco node ${node} on ${domain} is taken`);
        nodes.set(key, answer);
      },
    });
    api.identity("server", "im", "Hanse");
    hosts.each((host) => {
      const hostApi = host.domain === api.domain ? api : undefined;
      host.addIq("get", NS.discoInfo, "query", ({ payload, from }) => {
        const node = payload.attrs.node;
        return node ? nodeQuery(nodes, "info", host.domain, node, from) : infoOf(host);
      });
      host.addIq("get", NS.discoItems, "query", ({ payload, from }) => {
        const node = payload.attrs.node;
        if (node) return nodeQuery(nodes, "items", host.domain, node, from);
        const query = new Element("query", { xmlns: NS.discoItems });
        // XEP-0030 §4.1: the domain lists its components as items.
        if (hostApi) {
          for (const c of hosts.components())
            query.c("item", { jid: c.domain, ...(c.name ? { name: c.name } : {}) });
        }
        return query;
      });
    });
    // XEP-0030 §5 / XEP-0030 example 5: an account answers for itself (identity account/registered).
    api.iq(
      "get",
      NS.discoInfo,
      "query",
      ({ payload }) => {
        if (payload.attrs.node) throw new StanzaError("item-not-found", `no node ${payload.attrs.node}`);
        const query = new Element("query", { xmlns: NS.discoInfo });
        query.c("identity", { category: "account", type: "registered" });
        query.c("feature", { var: NS.discoInfo });
        return query;
      },
      { to: "bare" },
    );
    api.iq("get", NS.discoItems, "query", () => new Element("query", { xmlns: NS.discoItems }), {
      to: "bare",
    });
  },
};
