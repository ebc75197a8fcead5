/**
 * Blocking command: a user blocks JIDs; nothing from them reaches the user and nothing from the
 * user reaches them.
 * References: XEP-0191 §3.1 (disco feature), §3.2 (retrieve; a resource that asked gets pushes),
 * §3.3 (block, pushes, unavailable presence to the blocked contact, handling of blocked inbound
 * and outbound stanzas, the <blocked/> error), §3.4 (unblock, current presence to the contact),
 * §3.5 (unblock all), §6 (JID matching, see blocklist.ts); RFC 6120 §8.3.3 (error conditions).
 *
 * Hooks: one routing policy at priority 500, before carbons (-100) so a refused message is not
 * copied, and before dispatch so a blocked sender's message is neither delivered nor stored
 * offline. Lists are in memory while the user has sessions (blocklist.ts): no database round
 * trip per stanza.
 *
 * The presence sent on block and unblock goes only to JIDs allowed to receive the user's presence
 * (XEP-0191 §3.3/§3.4, "in accordance with RFC 3921"): an optional "presence-audience" service
 * (subscribers and directed-presence targets) if a module provides one, else the roster's
 * subscribers ("from"/"both"). With neither loaded, unblock sends nothing (it must not leak
 * presence) and block sends unavailable presence to the blocked JIDs that name an account
 * (saying "unavailable" leaks nothing).
 */
import { clone, Element } from "ltx";
import { z } from "zod";
import { type Jid, type JidError, parseJid } from "../../server/jid.ts";
import type { LocalSession, Module, ModuleApi, StanzaEvent } from "../../server/modules/module.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { Blocklists, blockingMigrations, matches } from "./blocklist.ts";

export const NS_BLOCKING = "urn:xmpp:blocking";
export const NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors";

/** Service "presence-audience" (provided by the presence module, if loaded). */
export interface PresenceAudience {
  /** JIDs (bare or full) the user's presence goes to now: subscribers and directed-presence targets. */
  audience(userBare: string): Iterable<string> | Promise<Iterable<string>>;
}

/** What this module needs of the roster service: who is subscribed to the user's presence. */
interface RosterSubscribers {
  readonly store: { subscribers(username: string): Promise<string[]> };
}

/** Service "blocking": other modules ask before delivering (offline storage does). */
export interface BlockingService {
  isBlocked(userBare: string, peer: Jid): Promise<boolean>;
}

const configSchema = z
  .object({
    /** JIDs one user may block. */
    max_items: z.number().int().positive().default(1000),
    /** Lists of users without sessions kept in memory (least recently used are dropped). */
    cached_idle_lists: z.number().int().min(0).default(10_000),
  })
  .strict();
type BlockingConfig = z.infer<typeof configSchema>;

function optionalService<T>(api: ModuleApi, name: string): T | undefined {
  try {
    return api.use<T>(name);
  } catch {
    return undefined;
  }
}

/** XEP-0191 §3.3: <item jid='…'/> children, normalised; jid-malformed for a bad one. */
function itemJids(payload: Element): string[] {
  return payload.getChildren("item").map((item) => {
    try {
      return parseJid(item.attrs.jid ?? "").full;
    } catch (err) {
      throw new StanzaError(
        "jid-malformed",
        `item ${item.attrs.jid ?? "(no jid)"}: ${(err as JidError).message}`,
      );
    }
  });
}

function itemList(name: string, jids: readonly string[]): Element {
  const el = new Element(name, { xmlns: NS_BLOCKING });
  for (const jid of jids) el.c("item", { jid });
  return el;
}

export const blockingModule: Module = {
  name: "blocking",
  xeps: ["0191"],
  migrations: blockingMigrations,
  configSchema,
  start(api) {
    const config = api.config<BlockingConfig>();
    const lists = new Blocklists(api.db, { maxIdle: config.cached_idle_lists });
    /** Sessions that retrieved the blocklist (XEP-0191 §3.2): they get pushes. */
    const interested = new WeakSet<LocalSession>();
    /** Presence this module sends on block, which its own outbound check must let through. */
    const exempt = new WeakSet<Element>();
    let pushes = 0;

    const events = api.use<{ on(event: string, listener: (s: LocalSession) => void): void }>(
      "session-events",
    );
    events.on("session-bound", (s) => {
      lists.pin(s.jid.local);
      void lists.list(s.jid.local).catch(() => {}); // warm the cache before the first stanza
    });
    events.on("session-ended", (s) => lists.unpin(s.jid.local));

    api.feature(NS_BLOCKING);
    api.provide<BlockingService>("blocking", {
      isBlocked: (userBare, peer) => lists.isBlocked(parseJid(userBare).local, peer),
    });

    /** XEP-0191 §3.3/§3.4: the same change, pushed to every resource that asked for the list. */
    const push = (userBare: string, payload: Element) => {
      for (const session of api.sessionsOf(userBare)) {
        if (!interested.has(session)) continue;
        const iq = new Element("iq", {
          type: "set",
          id: `block-push-${++pushes}`,
          from: userBare,
          to: session.jid.full,
        });
        iq.cnode(clone(payload));
        session.send(iq);
      }
    };

    /**
     * Who may see the user's presence (RFC 6121 §4.4.2: subscribers; §4.6: directed presence),
     * among the JIDs matched by `items`; undefined when no module can tell.
     */
    const audienceFor = async (user: Jid, items: ReadonlySet<string>): Promise<string[] | undefined> => {
      let all: Iterable<string>;
      const explicit = optionalService<PresenceAudience>(api, "presence-audience");
      const roster = optionalService<RosterSubscribers>(api, "roster");
      if (explicit) all = await explicit.audience(user.bare);
      else if (roster) all = await roster.store.subscribers(user.local);
      else return undefined;
      return [...all].filter((jid) => matches(items, parseJid(jid)));
    };

    /** Presence from one resource to one contact: its current one, or unavailable. */
    const sendPresence = (from: LocalSession, to: string, current?: Element) => {
      const presence = current ? clone(current) : new Element("presence", { type: "unavailable" });
      presence.attrs.from = from.jid.full;
      presence.attrs.to = to;
      exempt.add(presence);
      api.send(presence);
    };

    api.iq(
      "get",
      NS_BLOCKING,
      "blocklist",
      async ({ from, origin }) => {
        if (origin.session) interested.add(origin.session);
        return itemList("blocklist", [...(await lists.list(from.local))]);
      },
      { to: "bare" },
    );

    api.iq(
      "set",
      NS_BLOCKING,
      "block",
      async ({ from, payload }) => {
        const jids = itemJids(payload);
        // XEP-0191 §3.3: a block without items is a bad request.
        if (jids.length === 0) throw new StanzaError("bad-request", "name at least one JID to block");
        const current = await lists.list(from.local);
        if (new Set([...current, ...jids]).size > config.max_items) {
          throw new StanzaError("policy-violation", `a blocklist holds at most ${config.max_items} JIDs`);
        }
        const added = await lists.block(from.local, jids);
        push(from.bare, itemList("block", jids));
        if (added.length > 0) {
          // XEP-0191 §3.3: the contact now sees the user as unavailable.
          const targets =
            (await audienceFor(from, new Set(added))) ?? added.filter((jid) => parseJid(jid).local !== "");
          for (const session of api.sessionsOf(from.bare)) {
            if (!session.available) continue;
            for (const to of targets) sendPresence(session, to);
          }
        }
        return undefined;
      },
      { to: "bare" },
    );

    api.iq(
      "set",
      NS_BLOCKING,
      "unblock",
      async ({ from, payload }) => {
        const jids = itemJids(payload);
        // XEP-0191 §3.5: no items unblocks everything.
        const removed = await lists.unblock(from.local, jids.length > 0 ? jids : undefined);
        push(from.bare, itemList("unblock", jids));
        if (removed.length > 0) {
          // XEP-0191 §3.4: the contact gets the user's current presence again, if allowed to.
          const stillBlocked = await lists.list(from.local);
          const targets = (await audienceFor(from, new Set(removed)))?.filter(
            (jid) => !matches(stillBlocked, parseJid(jid)),
          );
          for (const session of api.sessionsOf(from.bare)) {
            if (!session.available || !session.presence) continue;
            for (const to of targets ?? []) sendPresence(session, to, session.presence);
          }
        }
        return undefined;
      },
      { to: "bare" },
    );

    const isLocalAccount = (jid: Jid) => jid.local !== "" && jid.domain === api.domain;

    api.policy(async ({ kind, stanza, from, to, origin }: StanzaEvent) => {
      // Between the user's own resources, and to or from the user's own server, nothing is
      // blocked, whatever the list says (blocking one's own domain must not cut one off).
      if (from.bare === to.bare || from.bare === api.domain || to.bare === api.domain) return undefined;
      const type = stanza.attrs.type;
      // This server's own error replies (the refusals below, bounces) carry the blocked JID as
      // 'from' or 'to' but come from us: they must reach the user.
      if (origin.kind === "internal" && type === "error") return undefined;
      // Inbound, XEP-0191 §3.3: the user's server delivers nothing from a blocked JID.
      if (isLocalAccount(to) && (await lists.isBlocked(to.local, from))) {
        // Presence: no answer at all; errors and iq results: dropped (never answer those).
        if (kind === "presence" || type === "error" || type === "result") return true;
        // Messages SHOULD and iq get/set MUST get an error, which SHOULD be service-unavailable:
        // the same answer as for an unavailable user.
        throw new StanzaError("service-unavailable");
      }
      // Outbound, XEP-0191 §3.3: not routed; the user learns why.
      if (isLocalAccount(from) && !exempt.has(stanza) && (await lists.isBlocked(from.local, to))) {
        // Generated by the server on the user's behalf (presence broadcasts): nobody to tell.
        if (origin.kind === "internal") return true;
        throw new StanzaError("not-acceptable", undefined, {
          // XEP-0191 §3.3, example "contact is blocked": type cancel.
          type: "cancel",
          appElement: new Element("blocked", { xmlns: NS_BLOCKING_ERRORS }),
        });
      }
      return undefined;
    }, 500);
  },
};
