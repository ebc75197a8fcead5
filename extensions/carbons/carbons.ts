/**
 * Message carbons: resources that enabled them get a copy of every eligible message the user
 * receives on another resource and of every one the user sends from another resource.
 * References: XEP-0280 §3 (disco features), §4-§5 (enable/disable per session, repeated requests
 * are not errors: §10.1), §7 (received copies go to the enabled resources that did not get the
 * original), §8 (sent copies go to the enabled resources other than the sender), §6 and
 * copies.ts (eligibility).
 *
 * Hooks: "received" copies come from the delivery observer (service "deliveries"), so they follow
 * exactly the resources the router chose (RFC 6121 §8.5); "sent" copies come from a policy on
 * client messages at priority -100, after every policy that may still refuse the message
 * (blocking runs at 500), so a refused message is not copied. Copies go straight to the session:
 * they are never routed, stored offline or copied again; a "message/bare" hook at priority 200
 * drops a copy that comes back from an ended session.
 */
import type { Element } from "ltx";
import type { LocalSession, Module, StanzaEvent } from "../../server/modules/module.ts";
import type { DeliveryObserver } from "../../server/routing/router.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { carbonCopy, isCopy, isEligible, NS_CARBONS, NS_CARBONS_RULES } from "./copies.ts";

export interface CarbonsService {
  isEnabled(session: LocalSession): boolean;
}

export const carbonsModule: Module = {
  name: "carbons",
  xeps: ["0280", "0297"],
  start(api) {
    // Per session, so it ends with the session and follows it through XEP-0198 resumption.
    const enabled = new WeakSet<LocalSession>();

    const toggle =
      (on: boolean) =>
      ({ origin, from }: StanzaEvent): undefined => {
        // XEP-0280 §4.1: only this server's own clients can have carbons.
        if (origin.kind !== "c2s" || !origin.session || from.domain !== api.domain) {
          throw new StanzaError("not-allowed", "carbons are for this server's own clients");
        }
        if (on) enabled.add(origin.session);
        else enabled.delete(origin.session);
        return undefined;
      };
    // XEP-0280 §4: sent without 'to' (the account answers); some clients address the server.
    for (const to of ["bare", "host"] as const) {
      api.iq("set", NS_CARBONS, "enable", toggle(true), { to });
      api.iq("set", NS_CARBONS, "disable", toggle(false), { to });
    }
    api.feature(NS_CARBONS);
    api.feature(NS_CARBONS_RULES);
    api.provide<CarbonsService>("carbons", { isEnabled: (s) => enabled.has(s) });

    const copyTo = (
      direction: "received" | "sent",
      original: Element,
      userBare: string,
      skip: (s: LocalSession) => boolean,
    ) => {
      for (const session of api.sessionsOf(userBare)) {
        if (!enabled.has(session) || skip(session)) continue;
        session.send(carbonCopy(direction, original, userBare, session.jid.full));
      }
    };

    // XEP-0280 §7: after RFC 6121 delivery, a copy to each enabled resource that did not get it.
    const onDelivered: DeliveryObserver = (stanza, sessions) => {
      if (stanza.name !== "message" || sessions.length === 0) return;
      if (!isEligible(stanza, "received")) return;
      const userBare = sessions[0]!.jid.bare;
      const sender = stanza.attrs.from;
      // The sender's own resource already has the message it wrote (a message to oneself).
      copyTo("received", stanza, userBare, (s) => sessions.includes(s) || s.jid.full === sender);
    };
    api.use<{ onDelivered(observer: DeliveryObserver): void }>("deliveries").onDelivered(onDelivered);

    // A copy comes back through routing only when the session it was for ended with it
    // unacknowledged (XEP-0198 hands such stanzas back). Its resource is gone; the others have
    // their own copies, and a client that never enabled carbons must not get one (XEP-0280 §2):
    // it is dropped rather than delivered to the bare JID or stored offline.
    api.on(
      "message",
      "bare",
      ({ stanza, from, to, origin }) =>
        origin.kind === "internal" && from.full === to.bare && isCopy(stanza) ? true : undefined,
      200,
    );

    // XEP-0280 §8: a copy of what a client sends to each other enabled resource of the user.
    api.policy(({ kind, stanza, from, to, origin }: StanzaEvent) => {
      if (kind !== "message" || origin.kind !== "c2s" || !origin.session) return undefined;
      // To one's own account the received copies cover the other resources (§7).
      if (to.bare === from.bare) return undefined;
      if (!isEligible(stanza, "sent")) return undefined;
      copyTo("sent", stanza, from.bare, (s) => s === origin.session);
      return undefined;
    }, -100);
  },
};
