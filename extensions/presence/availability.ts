/**
 * Availability: initial, subsequent and unavailable presence broadcast, probes sent and
 * answered, directed presence, and the unavailable broadcast when a session just ends.
 * References: RFC 6121 §4.2 (initial presence: broadcast to from/both, probe to/both, own
 * resources), §4.3 (probes: from the user's bare JID; answered with each available resource's last
 * presence, the last unavailable one, or unsubscribed), §4.4 (subsequent presence), §4.5
 * (unavailable, also when the server detects a session is gone), §4.6 (directed presence and its
 * unavailable), §3.1.2 (resending unanswered requests), §3.1.3 (redelivering pending requests).
 */
import type { Element } from "ltx";
import type { Jid } from "../../server/jid.ts";
import type { LocalSession } from "../../server/modules/module.ts";
import {
  addressed,
  availableSessions,
  type PresenceContext,
  presence,
  type SessionPresence,
} from "./context.ts";
import { isSubscriber, pendingRequests } from "./subscriptions.ts";

/**
 * A client's presence without 'to' (RFC 6121 §4.2-§4.5). Returns true when the stanza must go no
 * further (dropped by the flood limit, or meaningless); otherwise the router delivers it to the
 * account's own available resources, as §4.2.2/§4.4.2/§4.5.2 ask.
 */
export async function broadcastPresence(
  ctx: PresenceContext,
  session: LocalSession,
  stanza: Element,
): Promise<boolean | undefined> {
  const state = ctx.stateOf(session);
  const type = stanza.attrs.type;
  if (type === undefined) {
    if (!state.online) {
      state.online = true;
      state.bucket.take();
      await initialPresence(ctx, session, stanza);
      return undefined;
    }
    if (!state.bucket.take()) {
      flooded(ctx, session, state);
      return true;
    }
    clearTrailing(state);
    await toSubscribers(ctx, session, stanza, false);
    return undefined;
  }
  if (type === "unavailable") {
    if (state.online) await wentOffline(ctx, session, stanza, false);
    return undefined;
  }
  // A probe or subscription stanza to oneself means nothing (§4.2.2: self-presence is implicit).
  return true;
}

/** RFC 6121 §4.6.2: directed presence while available is remembered for the unavailable. */
export function noteDirectedPresence(
  ctx: PresenceContext,
  session: LocalSession,
  to: Jid,
  type?: string,
): void {
  const state = ctx.stateOf(session);
  if (!state.online || to.bare === session.jid.bare) return;
  if (type === "unavailable") {
    state.directed.delete(to.full);
  } else if (type === undefined && !state.directed.has(to.full)) {
    if (state.directed.size < ctx.config.max_directed) state.directed.add(to.full);
    else ctx.api.log.debug({ jid: session.jid.full, to: to.full }, "directed presence not tracked: limit");
  }
}

async function initialPresence(ctx: PresenceContext, session: LocalSession, stanza: Element): Promise<void> {
  const { api, roster } = ctx;
  const user = session.jid;
  await roster.serial(user.local, async () => {
    const others = availableSessions(api, user.bare, session);
    ctx.lastUnavailable.delete(user.bare);
    const [subscribers, subscriptions] = await Promise.all([
      roster.store.subscribers(user.local),
      roster.store.subscriptions(user.local),
    ]);
    // RFC 6121 §4.2.2: to every contact subscribed to the user, from the full JID.
    for (const jid of subscribers) api.send(addressed(stanza, jid));
    // RFC 6121 §4.2.2, §4.3.1: probe every contact the user is subscribed to, from the bare JID.
    for (const jid of subscriptions) api.send(presence({ type: "probe", from: user.bare, to: jid }));
    // RFC 6121 §4.2.2: the user is implicitly subscribed to itself: the new resource learns of the
    // others (they learn of it from the router's delivery to the bare JID).
    for (const other of others) session.send(addressed(other.presence!, session.jid.full));
    // RFC 6121 §3.1.3: requests waiting for an answer, at every initial presence until answered.
    for (const request of await pendingRequests(ctx, user.local)) session.send(request);
    if (others.length === 0) {
      // RFC 6121 §3.1.2 (SHOULD resend unanswered requests): a remote contact's server may have
      // lost ours; a local one stored it (§3.1.3), so only remote contacts are asked again.
      for (const jid of await roster.store.pendingOut(user.local)) {
        const domain = jid.slice(jid.indexOf("@") + 1).split("/")[0];
        if (domain !== api.domain) api.send(presence({ type: "subscribe", from: user.bare, to: jid }));
      }
    }
  });
}

/** RFC 6121 §4.4.2: subsequent presence to every subscriber (and, for `toSelf`, own resources). */
async function toSubscribers(
  ctx: PresenceContext,
  session: LocalSession,
  stanza: Element,
  toSelf: boolean,
): Promise<void> {
  const user = session.jid;
  await ctx.roster.serial(user.local, async () => {
    for (const jid of await ctx.roster.store.subscribers(user.local)) ctx.api.send(addressed(stanza, jid));
    if (toSelf) ctx.api.send(addressed(stanza, user.bare));
  });
}

/**
 * RFC 6121 §4.5.2: unavailable to every subscriber and to everyone who got directed presence
 * (§4.6.3). `toSelf`: the session ended without saying so, so the router delivered nothing to the
 * account's other resources (§4.5.2 asks for that too).
 */
export async function wentOffline(
  ctx: PresenceContext,
  session: LocalSession,
  stanza: Element,
  toSelf: boolean,
): Promise<void> {
  const { api, roster } = ctx;
  const state = ctx.stateOf(session);
  state.online = false;
  clearTrailing(state);
  const directed = [...state.directed];
  state.directed.clear();
  const user = session.jid;
  await roster.serial(user.local, async () => {
    // A new login took this resource over (RFC 6120 §7.7.2.2) and is already available: an
    // unavailable from the same full JID would now be false.
    if (
      toSelf &&
      api.sessionsOf(user.bare).some((s) => s !== session && s.jid.full === user.full && s.available)
    ) {
      return;
    }
    const targets = new Set(await roster.store.subscribers(user.local));
    for (const jid of directed) targets.add(jid);
    for (const jid of targets) api.send(addressed(stanza, jid));
    if (toSelf) api.send(addressed(stanza, user.bare));
    // RFC 6121 §4.3.2 rule 2: what probes get while the account has no available resource.
    if (availableSessions(api, user.bare, session).length === 0) {
      ctx.lastUnavailable.set(user.bare, stanza, api.domain);
    }
  });
}

/** The session broke its broadcast limit: drop, log now and then, send the latest state later. */
function flooded(ctx: PresenceContext, session: LocalSession, state: SessionPresence): void {
  state.dropped++;
  const now = Date.now();
  if (now - state.lastFloodLog >= ctx.config.flood_log_interval * 1000) {
    ctx.api.log.warn(
      { jid: session.jid.full, dropped: state.dropped, rate: ctx.config.broadcast_rate },
      "presence flood: broadcasts dropped",
    );
    state.lastFloodLog = now;
    state.dropped = 0;
  }
  if (state.trailing) return;
  const fire = () => {
    state.trailing = undefined;
    if (!state.online || !session.available || !session.presence) return;
    if (!state.bucket.take()) {
      state.trailing = setTimeout(fire, state.bucket.msUntilToken());
      state.trailing.unref();
      return;
    }
    // Contacts (and own resources) end with the state the client is really in.
    ctx.track(toSubscribers(ctx, session, session.presence, true), "presence broadcast after a flood");
  };
  state.trailing = setTimeout(fire, state.bucket.msUntilToken());
  state.trailing.unref();
}

function clearTrailing(state: SessionPresence): void {
  if (state.trailing) clearTimeout(state.trailing);
  state.trailing = undefined;
}

/** RFC 6121 §4.3.2: a probe from `from` for the local account `to`. */
export async function answerProbe(ctx: PresenceContext, from: Jid, to: Jid): Promise<void> {
  const { api } = ctx;
  const user = to.toBare();
  const answer = from.full;
  // Rule 1: no such account, or the prober is not subscribed: unsubscribed (also §8.5.1).
  if (!(await ctx.accounts.exists(user.local)) || !(await isSubscriber(ctx, user.local, from.bare))) {
    api.send(presence({ type: "unsubscribed", from: user.bare, to: from.bare }));
    return;
  }
  const available = availableSessions(api, user.bare);
  if (available.length === 0) {
    // Rule 2: the last unavailable presence (with its delay), or a plain one.
    const last = ctx.lastUnavailable.get(user.bare);
    api.send(last ? addressed(last, answer) : presence({ type: "unavailable", from: user.bare, to: answer }));
    return;
  }
  // Rule 3: the last presence of each available resource.
  for (const session of available) api.send(addressed(session.presence!, answer, session.jid.full));
}
