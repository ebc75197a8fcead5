/**
 * After a claim the thing and its owner become friends: a presence subscription both ways, made
 * through the presence service so that both rosters change exactly as RFC 6121 says (roster
 * pushes, pre-approval, automatic replies), and the owner sees the thing online.
 * References: XEP-0347 §3.9 ("the thing knows it can accept friendship requests from the
 * corresponding owner. It can also safely send a friendship request to the owner"), RFC 6121 §3.1
 * (subscription request and approval), §3.4 (pre-approval).
 *
 * The thing is always a local account (registration is local only). For a local owner both sides
 * are done here: each pre-approves the other, then each asks, and the pre-approvals answer at
 * once. For an owner on another domain only the thing's side can be done: it pre-approves the
 * owner and asks to see the owner; the owner's client answers that request (it knows the JID from
 * the claim result), and the owner's own request to the thing is then approved automatically.
 * The thing learns who its owner is from `claimed` before any of this reaches it (the caller
 * sends `claimed` first), so it can tell these subscriptions come from the registry's claim.
 */
import { Element } from "ltx";
import type { PresenceService } from "../extensions/presence/presence.ts";
import { parseJid } from "../server/jid.ts";

function presence(type: string, from: string, to: string): Element {
  return new Element("presence", { type, from, to });
}

/** Makes `thing` (local) and `owner` subscribe to each other's presence. */
export async function befriend(
  service: PresenceService,
  localDomain: string,
  thing: string,
  owner: string,
): Promise<void> {
  const o = parseJid(owner);
  const ownerIsLocal = o.domain === localDomain && o.local !== "";
  await service.send(presence("subscribed", thing, owner)); // RFC 6121 §3.4: pre-approval
  if (ownerIsLocal) await service.send(presence("subscribed", owner, thing));
  await service.send(presence("subscribe", thing, owner)); // §3.1.2
  if (ownerIsLocal) await service.send(presence("subscribe", owner, thing));
}
