/**
 * The presence module: subscriptions (RFC 6121 §3) and availability (§4) for local accounts.
 * References: RFC 6121 §3, §4, §8.5.2.1.2/§8.5.3.1 (the router hands subscription stanzas and
 * probes for an account to its bare JID), RFC 6120 §10.3 (presence without 'to' is for the
 * sender's own account).
 *
 * Where it hooks in:
 * - a policy hook at priority -1000 (after every other policy has authorised or metered) takes
 *   the presence a client sends: outbound subscription processing, broadcasts, directed presence;
 * - a "presence/bare" hook at priority 0 on the domain takes presence arriving for a local
 *   account, whoever sent it (a local user's module-routed stanza, or later s2s): inbound
 *   subscriptions, probes, errors; availability passes on to the router's delivery;
 * - "session-ended": a session that ends while available sends unavailable (§4.5, §4.6.3).
 *
 * Service "presence" (PresenceService): other modules acting for a local user (e.g. making a
 * thing and its owner friends) send subscription stanzas through it, so the user's roster
 * changes exactly as if the user's client had sent them. Service "presence-audience": who sees
 * the user's presence now (subscribers and directed-presence targets), for the blocking module.
 */
import type { Element } from "ltx";
import type { AccountStore } from "../../server/accounts/store.ts";
import type { SessionEvents } from "../../server/broker.ts";
import { parseJid } from "../../server/jid.ts";
import type { LocalSession, Module } from "../../server/modules/module.ts";
import type { RosterService } from "../roster/roster.ts";
import { SUBSCRIPTION_TYPES } from "../roster/subscription-state.ts";
import { answerProbe, broadcastPresence, noteDirectedPresence, wentOffline } from "./availability.ts";
import {
  deliverToAvailable,
  isLocalAccount,
  LastUnavailable,
  newSessionPresence,
  type PresenceConfig,
  type PresenceContext,
  presence,
  presenceConfigSchema,
  type SessionPresence,
} from "./context.ts";
import { inboundSubscription, outboundSubscription } from "./subscriptions.ts";

/** After every other policy (authorisation, metering, rate limits). */
export const OUTBOUND_PRIORITY = -1000;
export const INBOUND_PRIORITY = 0;
/** Offline accounts whose last unavailable presence is kept for probes (oldest forgotten first). */
const LAST_UNAVAILABLE_KEPT = 10_000;

export interface PresenceService {
  /**
   * Sends a presence stanza for a local account as its client would: subscription types update
   * the account's roster first (RFC 6121 §3), others are routed as they are. `from` must be set.
   */
  send(stanza: Element): Promise<void>;
}

/** Background work of each started instance, awaited by stop() before the database closes. */
const running = new Set<Set<Promise<unknown>>>();

export const presenceModule: Module = {
  name: "presence",
  depends: ["roster"],
  configSchema: presenceConfigSchema,
  start(api) {
    const config = api.config<PresenceConfig>();
    const roster = api.use<RosterService>("roster");
    const states = new WeakMap<LocalSession, SessionPresence>();
    const inFlight = new Set<Promise<unknown>>();
    running.add(inFlight);
    const ctx: PresenceContext = {
      api,
      roster,
      accounts: api.use<AccountStore>("accounts"),
      config,
      lastUnavailable: new LastUnavailable(LAST_UNAVAILABLE_KEPT),
      stateOf(session) {
        let state = states.get(session);
        if (!state) {
          state = newSessionPresence(config);
          states.set(session, state);
        }
        return state;
      },
      track(task, what) {
        const p: Promise<unknown> = task
          .catch((err) => api.log.error({ err }, `${what} failed`))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      },
    };

    api.policy(async ({ kind, stanza, to, origin }) => {
      if (kind !== "presence" || origin.kind !== "c2s" || !origin.session) return undefined;
      const session = origin.session;
      const type = stanza.attrs.type;
      if (stanza.attrs.to === undefined) return broadcastPresence(ctx, session, stanza);
      if (type !== undefined && SUBSCRIPTION_TYPES.has(type)) {
        await outboundSubscription(ctx, stanza, session.jid, to);
        return true;
      }
      if (type === "probe") {
        stanza.attrs.from = session.jid.bare; // RFC 6121 §4.3.1: probes come from the bare JID
      } else if (type === undefined || type === "unavailable") {
        noteDirectedPresence(ctx, session, to, type);
      }
      return undefined;
    }, OUTBOUND_PRIORITY);

    api.on(
      "presence",
      "bare",
      async ({ stanza, from, to }) => {
        if (!to.local) return undefined;
        const user = to.toBare();
        const type = stanza.attrs.type;
        if (type === undefined || type === "unavailable") {
          // RFC 6121 §8.5.2.1.2: the router delivers it, after the subscription changes already
          // under way for this account (an approval arrives before the presence that follows it).
          await roster.serial(user.local, async () => {});
          return undefined;
        }
        if (from.bare === user.bare) return true; // nothing to manage about oneself (§4.2.2)
        if (type === "probe") {
          await answerProbe(ctx, from, to);
        } else if (SUBSCRIPTION_TYPES.has(type)) {
          await inboundSubscription(ctx, stanza, from, to);
        } else if (type === "error") {
          // A bounce of something sent for the user (stamped with the bare JID): its resources.
          deliverToAvailable(api, user.bare, stanza);
        }
        // Any other type is not presence (RFC 6121 §4.7.1): ignored.
        return true;
      },
      INBOUND_PRIORITY,
    );

    // RFC 6121 §4.5.2 / §4.6.3: a session gone without unavailable presence (connection lost,
    // stream error, takeover, shutdown) is announced as unavailable.
    api.use<SessionEvents>("session-events").on("session-ended", (session) => {
      const state = states.get(session);
      if (!state?.online) return;
      const stanza = presence({ type: "unavailable", from: session.jid.full });
      ctx.track(wentOffline(ctx, session, stanza, true), "unavailable broadcast");
    });

    const service: PresenceService = {
      async send(stanza) {
        const from = parseJid(stanza.attrs.from ?? "");
        const type = stanza.attrs.type;
        if (type && SUBSCRIPTION_TYPES.has(type) && isLocalAccount(api, from) && stanza.attrs.to) {
          await outboundSubscription(ctx, stanza, from, parseJid(stanza.attrs.to));
          return;
        }
        api.send(stanza);
      },
    };
    api.provide("presence", service);

    // Who sees the user's presence now: subscribers (§4.4.2) and directed-presence targets (§4.6);
    // the blocking module (XEP-0191 §3.3/§3.4) asks before sending presence on block/unblock.
    api.provide("presence-audience", {
      async audience(userBare: string): Promise<Iterable<string>> {
        const all = new Set(await roster.store.subscribers(parseJid(userBare).local));
        for (const session of api.sessionsOf(userBare)) {
          for (const jid of states.get(session)?.directed ?? []) all.add(jid);
        }
        return all;
      },
    });
  },
  async stop() {
    for (const inFlight of running) {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    }
  },
};
