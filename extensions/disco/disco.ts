/**
 * Service discovery: disco#info and disco#items for the domain, its components and accounts.
 * Identities and features come from the modules that registered them on each host.
 * References: XEP-0030 §3.1 (info), §4.1 (items), §3.2/§4.2 (item-not-found for unknown nodes),
 * §5 (accounts: identity category "account"), RFC 6121 §8.5.1 (say nothing about other accounts).
 */
import { Element } from "ltx";
import type { Module } from "../../server/modules/module.ts";
import type { Host } from "../../server/routing/host-table.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { NS } from "../../server/xml/namespaces.ts";

export interface HostsService {
  get(domain: string): Host | undefined;
  each(fn: (host: Host) => void): void;
  components(): Host[];
}

function infoOf(host: Host, node: string | undefined): Element {
  if (node) throw new StanzaError("item-not-found", `no node ${node}`); // XEP-0030 §3.2
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
    api.identity("server", "im", "Hanse");
    hosts.each((host) => {
      const hostApi = host.domain === api.domain ? api : undefined;
      host.addIq("get", NS.discoInfo, "query", ({ payload }) => infoOf(host, payload.attrs.node));
      host.addIq("get", NS.discoItems, "query", ({ payload }) => {
        if (payload.attrs.node) throw new StanzaError("item-not-found", `no node ${payload.attrs.node}`);
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
