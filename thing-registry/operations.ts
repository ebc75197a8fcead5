/**
 * The registry's operations, one handler each: register, update, unregister (by the thing); mine,
 * remove, disown and update with `jid` (by the owner); search (by anyone, also over federation).
 * References: XEP-0347 §3.6–§3.8 (register), §3.9 (mine, claimed), §3.10 (remove, removed),
 * §3.13–§3.14 (update), §3.15 (search), §3.16 (unregister), §3.17 (disown, disowned).
 */
import { Element } from "ltx";
import { tryParseJid } from "../server/jid.ts";
import type { IqHandler } from "../server/modules/module.ts";
import { StanzaError } from "../server/xml/errors.ts";
import {
  checkTagPolicy,
  type RegistryContext,
  rateLimit,
  requireLocal,
  thingSession,
  withoutKey,
} from "./context.ts";
import { befriend } from "./friendship.ts";
import {
  type NodeRef,
  NS_DISCOVERY,
  nodeAttrs,
  parseBool,
  parseNode,
  parseSearch,
  parseTags,
  tagElement,
} from "./protocol.ts";
import { searchThings } from "./search.ts";
import type { Thing } from "./store.ts";

const element = (name: string, attrs: Record<string, string> = {}) =>
  new Element(name, { xmlns: NS_DISCOVERY, ...attrs });

/** The bare JID named by a `jid` attribute (XEP-0347 examples also show full JIDs there). */
function targetJid(payload: Element): string {
  const text = payload.attrs.jid;
  if (text === undefined) throw new StanzaError("bad-request", "the jid attribute is missing");
  const jid = tryParseJid(text);
  if (!jid) throw new StanzaError("jid-malformed", `jid='${text}' is not a JID`);
  return jid.bare;
}

/** Sends an iq set to the thing and resolves true if it answered with a result in time. */
async function askThing(ctx: RegistryContext, thing: string, payload: Element): Promise<boolean> {
  const session = thingSession(ctx, thing);
  if (!session) return false;
  const iq = new Element("iq", { type: "set", to: session.jid.full });
  iq.cnode(payload);
  try {
    const reply = await ctx.api.request(iq, ctx.config.ack_timeout * 1000);
    return reply.attrs.type === "result";
  } catch {
    return false; // timeout, or the broker stopping
  }
}

/** XEP-0347 §3.6–§3.8: a thing (a local account) registers itself or one of its nodes. */
export function registerHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    requireLocal(ctx, from, "registration");
    rateLimit(ctx.limits.register, from, "register"); // first: invalid requests count too
    const node = parseNode(payload);
    const tags = parseTags(payload);
    checkTagPolicy(ctx, tags);
    const selfOwned = parseBool(payload, "selfOwned", false);
    const outcome = await ctx.store.register(from.bare, node, tags, selfOwned);
    if (outcome.kind === "claimed") {
      // §3.6: already claimed: nothing changes, the thing learns its owner. Explicit public (§13
      // of the digest: the schema default for claimed is false, the prose implies true).
      return element("claimed", { jid: outcome.owner, public: String(outcome.public) });
    }
    return undefined;
  };
}

/** XEP-0347 §3.16: always an empty result. */
export function unregisterHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    await ctx.store.unregister(from.bare, parseNode(payload));
    return undefined;
  };
}

/** XEP-0347 §3.13 (the thing itself) and §3.14 (the owner, with `jid`). */
export function updateHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    const node = parseNode(payload);
    const tags = withoutKey(parseTags(payload));
    const target = payload.attrs.jid === undefined ? from.bare : targetJid(payload);
    const byOwner = target !== from.bare;
    if (!byOwner) requireLocal(ctx, from, "updating a thing");
    rateLimit(ctx.limits.update, from, "update");
    checkTagPolicy(
      ctx,
      tags.filter((t) => !(t.type === "str" && t.value === "")),
    );
    const thing = await ctx.store.find(target, node);
    // §3.14: not found or owned by somebody else: "not existing" for this owner.
    if (!thing || (byOwner && thing.owner !== from.bare)) throw new StanzaError("item-not-found");
    // §3.13: found but unclaimed: nothing changes; the thing should register again.
    if (thing.owner === undefined) return element("disowned");
    const result = await ctx.store.update(thing.id, tags, ctx.config.max_tags);
    if (result === "too-many") {
      throw new StanzaError("bad-request", `too many tags (at most ${ctx.config.max_tags})`);
    }
    return undefined;
  };
}

/** What the owner gets back, and the thing (XEP-0347 §3.9: node attributes as needed). */
function claimedForOwner(thing: Thing): Element {
  return element("claimed", { jid: thing.jid, ...nodeAttrs(thing.node) });
}

function afterClaim(ctx: RegistryContext, thing: Thing, owner: string): void {
  ctx.track(
    (async () => {
      // §3.9: the thing is told first (with an explicit public), so it knows the owner before the
      // subscription requests arrive. Offline: it learns it at its next register.
      await askThing(
        ctx,
        thing.jid,
        element("claimed", { jid: owner, public: String(thing.public), ...nodeAttrs(thing.node) }),
      );
      if (ctx.config.friendship && ctx.presence && owner !== thing.jid) {
        await befriend(ctx.presence, ctx.localDomain, thing.jid, owner);
      }
    })(),
    "claim notification",
  );
}

/** XEP-0347 §3.9: an owner claims a thing by presenting exactly its tags. */
export function mineHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    const owner = from.bare;
    const blocked = ctx.limits.failedClaims.blockedFor(owner);
    if (blocked > 0) {
      throw new StanzaError("resource-constraint", `too many failed claims: try again in ${blocked} s`);
    }
    rateLimit(ctx.limits.mine, from, "claim");
    const tags = parseTags(payload);
    if (tags.length === 0) throw new StanzaError("bad-request", "a claim needs the thing's tags");
    const isPublic = parseBool(payload, "public", true);
    const outcome = await ctx.store.claim(tags, owner, isPublic);
    if (outcome.kind === "claimed") {
      ctx.api.log.info({ thing: outcome.thing.jid, owner }, "thing claimed");
      afterClaim(ctx, outcome.thing, owner);
      return claimedForOwner(outcome.thing);
    }
    if (outcome.kind === "ambiguous") {
      ctx.api.log.warn({ owner, count: outcome.count }, "claim matches several unclaimed things: refused");
    } else {
      const mine = await ctx.store.ownedWithTags(owner, tags);
      if (mine) return claimedForOwner(mine); // §3.9: the same owner claiming again
    }
    // §3.9: no detail on why; §6.5: every miss counts towards the lock-out.
    ctx.limits.failedClaims.fail(owner);
    throw new StanzaError("item-not-found");
  };
}

/** XEP-0347 §3.10: the owner removes a thing; the thing is told (`removed`) if it is online. */
export function removeHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    const jid = targetJid(payload);
    const node = parseNode(payload);
    if (!(await ctx.store.remove(from.bare, jid, node))) throw new StanzaError("item-not-found");
    ctx.track(askThing(ctx, jid, element("removed", nodeAttrs(node))), "removed notification");
    return undefined;
  };
}

/** XEP-0347 §3.17: the thing must acknowledge `disowned` before the registry lets go of it. */
export function disownHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    const jid = targetJid(payload);
    const node = parseNode(payload);
    const thing = await ctx.store.find(jid, node);
    if (!thing || thing.owner !== from.bare) throw new StanzaError("item-not-found");
    if (!thingSession(ctx, jid)) throw new StanzaError("not-allowed", "the thing is offline");
    if (!(await askThing(ctx, jid, element("disowned", nodeAttrs(node))))) {
      throw new StanzaError("not-allowed", "the thing did not acknowledge being disowned");
    }
    if (!(await ctx.store.disown(thing.id, from.bare))) throw new StanzaError("item-not-found");
    ctx.api.log.info({ thing: jid, owner: from.bare }, "thing disowned");
    return undefined;
  };
}

/** XEP-0347 §3.15: claimed public things matching every operator; open to the federation. */
export function searchHandler(ctx: RegistryContext): IqHandler {
  return async ({ from, payload }) => {
    rateLimit(ctx.limits.search, from, "search");
    const request = parseSearch(payload);
    const limit = Math.min(request.maxCount ?? ctx.config.max_search_results, ctx.config.max_search_results);
    const result = await searchThings(ctx.api.db, ctx.store, request.operators, request.offset, limit);
    const found = element("found", { more: String(result.more) });
    for (const thing of result.things) {
      const el = found.c("thing", {
        owner: thing.owner,
        jid: thing.jid,
        ...nodeAttrs(thing.node as NodeRef),
      });
      for (const tag of thing.tags) el.cnode(tagElement(tag));
    }
    return found;
  };
}
