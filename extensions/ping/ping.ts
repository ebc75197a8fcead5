/**
 * XMPP Ping: every host answers, and an account answers for itself (a client pinging without
 * 'to' checks its own connection).
 * References: XEP-0199 §4.2 (client-to-server ping), §4.3 (component ping), §6 (error if unsupported).
 */
import type { Module } from "../../server/modules/module.ts";
import { NS } from "../../server/xml/namespaces.ts";
import type { HostsService } from "../disco/disco.ts";

export const pingModule: Module = {
  name: "ping",
  xeps: ["0199"],
  depends: ["disco"],
  start(api) {
    const hosts = api.use<HostsService>("hosts");
    hosts.each((host) => host.addIq("get", NS.ping, "ping", () => undefined));
    api.iq("get", NS.ping, "ping", () => undefined, { to: "bare" });
  },
};
