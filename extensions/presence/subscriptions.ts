/**
 * Presence subscription stanzas through the state machine: outbound (a local user sends one) and
 * inbound (one arrives for a local user, from a local or a remote sender alike).
 * References: RFC 6121 §3 (managing subscriptions), §3.1.2/§3.1.3 (request: stamp bare JIDs; keep
 * the request until answered and deliver it at the next available resource), §3.1.5/§3.1.6
 * (approval), §3.2 (cancellation), §3.3 (unsubscribe), §3.4 (pre-approval), §8.5.1 (no such
 * user), Appendix A (via subscription-state.ts).
 *
 * Nothing here assumes the contact is local: stanzas for the contact are routed (api.send), and
 * the contact's side runs `inboundSubscription` wherever the contact's account lives. Each
 * account's changes run in its serial queue, so the stanzas that follow a change leave in order.
 */

import type { Element } from "ltx";
import { parse } from "ltx";
import type { Jid } from "../../server/jid.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { serializeStanza } from "../../server/xml/serialize.ts";
import { emptyItem, type RosterItem } from "../roster/store.ts";
import {
  hasFrom,
  inbound,
  NO_SUBSCRIPTION,
  outbound,
  type SubscriptionState,
  type SubscriptionType,
  sameState,
} from "../roster/subscription-state.ts";
import {
  deliverToAvailable,
  type PresenceContext,
  presence,
  sendCurrentPresence,
  sendUnavailable,
} from "./context.ts";

/** States a client sees in its roster make an item visible (RFC 6121 §3.1.2, §3.1.5, §3.4.2). */
function shownInRoster(s: SubscriptionState): boolean {
  return s.subscription !== "none" || s.pendingOut || s.approved;
}

function withState(current: RosterItem | undefined, jid: string, state: SubscriptionState, request?: string) {
  const base = current ?? emptyItem(jid);
  return {
    ...base,
    visible: base.visible || shownInRoster(state),
    state,
    request: state.pendingIn ? (request ?? base.request) : undefined,
  };
}

/**
 * A local user sends subscribe/subscribed/unsubscribe/unsubscribed to `contact`. Throws a
 * StanzaError (bounced to the sending resource) when the roster is full.
 */
export async function outboundSubscription(
  ctx: PresenceContext,
  stanza: Element,
  user: Jid,
  contactJid: Jid,
): Promise<void> {
  const { api, roster } = ctx;
  const type = stanza.attrs.type as SubscriptionType;
  // RFC 6121 §3.1.2: a request to a full JID is a request to the bare JID.
  const contact = contactJid.bare;
  if (contact === user.bare) return; // one's own presence needs no subscription (§4.2.2)
  await roster.serial(user.local, async () => {
    const current = await roster.store.get(user.local, contact);
    const before = current?.state ?? NO_SUBSCRIPTION;
    const result = outbound(before, type);
    if (!sameState(before, result.state)) {
      if (!current?.visible && shownInRoster(result.state)) await roster.checkRoom(user.local, current);
      await roster.update(user.local, contact, (now) => withState(now, contact, result.state));
    }
    // RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2: subscription stanzas leave stamped with bare JIDs.
    stanza.attrs.from = user.bare;
    stanza.attrs.to = contact;
    if (result.sendUnavailable) sendUnavailable(api, user.bare, contact); // §3.2.2: before routing
    if (result.route) api.send(stanza);
    if (result.sendPresence) sendCurrentPresence(api, user.bare, contact); // §3.1.5: after routing
  });
}

/** Log lines about refused requests, at most one per account per minute. */
const refusalLogged = new Map<string, number>();

/** A subscription stanza from `from` arrives for the local account `to`. */
export async function inboundSubscription(
  ctx: PresenceContext,
  stanza: Element,
  from: Jid,
  to: Jid,
): Promise<void> {
  const { api, roster, accounts } = ctx;
  const type = stanza.attrs.type as SubscriptionType;
  const user = to.toBare();
  const contact = from.bare;
  await roster.serial(user.local, async () => {
    if (!(await accounts.exists(user.local))) {
      // RFC 6121 §8.5.1: no such user: a request is answered with unsubscribed, the rest ignored.
      if (type === "subscribe") api.send(presence({ type: "unsubscribed", from: user.bare, to: contact }));
      return;
    }
    const current = await roster.store.get(user.local, contact);
    const before = current?.state ?? NO_SUBSCRIPTION;
    const result = inbound(before, type);
    let request: string | undefined;
    if (type === "subscribe" && result.state.pendingIn && !before.pendingIn) {
      const waiting = await roster.store.countRequests(user.local);
      if (waiting >= ctx.config.max_pending_requests) {
        // Our limit: the requests already waiting are kept and the new one is refused; the sender
        // learns why (resource-constraint) and may ask again once the user has answered some.
        const last = refusalLogged.get(user.bare) ?? 0;
        if (Date.now() - last > 60_000) {
          if (refusalLogged.size > 10_000) refusalLogged.clear();
          refusalLogged.set(user.bare, Date.now());
          api.log.warn(
            { user: user.bare, from: contact, waiting },
            "subscription request refused: too many pending",
          );
        }
        throw new StanzaError(
          "resource-constraint",
          "too many subscription requests are waiting for an answer",
        );
      }
      // RFC 6121 §3.1.3: kept until answered; redelivered at every initial presence.
      request = serializeStanza(stanza);
    }
    if (!sameState(before, result.state)) {
      await roster.update(user.local, contact, (now) => withState(now, contact, result.state, request));
    }
    if (result.sendUnavailable) sendUnavailable(api, user.bare, contact); // §3.3.3
    if (result.deliver) deliverToAvailable(api, user.bare, stanza);
    if (result.reply) {
      // RFC 6121 §3.1.3 rule 1 and §3.4: approved for the user, without asking it.
      api.send(presence({ type: result.reply, from: user.bare, to: contact }));
    }
    if (result.sendPresence) sendCurrentPresence(api, user.bare, contact);
  });
}

/** RFC 6121 §3.1.3: the requests still waiting for the user, as stanzas to deliver again. */
export async function pendingRequests(ctx: PresenceContext, username: string): Promise<Element[]> {
  const stored = await ctx.roster.store.requests(username);
  const out: Element[] = [];
  for (const { jid, request } of stored) {
    try {
      // Our own serialisation of a stanza the stream parser accepted: safe for ltx's parser.
      out.push(parse(request));
    } catch (err) {
      ctx.api.log.error({ err, user: username, from: jid }, "stored subscription request unreadable");
    }
  }
  return out;
}

/** Whether `contact` has approved presence from `username` (may receive it, §4.3.2 rule 1). */
export async function isSubscriber(
  ctx: PresenceContext,
  username: string,
  contact: string,
): Promise<boolean> {
  const item = await ctx.roster.store.get(username, contact);
  return item !== undefined && hasFrom(item.state.subscription);
}
