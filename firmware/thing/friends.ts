/**
 * The thing's friendships: its roster (fetched before initial presence so subscription requests
 * reach it, kept current by roster pushes), subscription requests answered after asking who may
 * be a friend, and befriending/unfriending on the owner's claim or the provisioning service's
 * recommendation.
 * References: RFC 6121 §2.1.3 (roster get), §2.1.6 (roster push; accepted only from the user's
 * own account), §2.2 (an interested resource requests the roster before presence), §3.1
 * (subscribe / subscribed), §3.2 (unsubscribed: refusing or cancelling), §3.3 (unsubscribe);
 * XEP-0324 §3.1 (isFriend for a stranger's request; friend/unfriend from the trusted service
 * only); XEP-0347 §3.9 (after a claim the thing may befriend its owner).
 */
import { Element } from "ltx";
import type { Log } from "../xmpp/connection.ts";
import type { AccessDecider } from "./decisions.ts";
import { bareJid } from "./sender.ts";

export const NS_ROSTER = "jabber:iq:roster";

/** Roster entries a thing keeps in memory (the server enforces its own limit too). */
const MAX_ROSTER = 10_000;

type Subscription = "none" | "to" | "from" | "both";

export interface FriendsDeps {
  send(stanza: Element): void;
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  /** The thing's own bare JID. */
  self(): string;
  /** Friends approved on the device (used when there is no provisioning service). */
  readonly approved: ReadonlySet<string>;
  readonly log?: Log;
}

export class Friends {
  private readonly roster = new Map<string, Subscription>();
  decider: AccessDecider | undefined;

  constructor(private readonly deps: FriendsDeps) {}

  /** A friend approved on the device: listed in the options, or subscribed to our presence. */
  isLocalFriend(bareJid: string): boolean {
    const sub = this.roster.get(bareJid);
    return this.deps.approved.has(bareJid) || sub === "from" || sub === "both";
  }

  subscription(bareJid: string): Subscription {
    return this.roster.get(bareJid) ?? "none";
  }

  /** RFC 6121 §2.1.3: the whole roster, replacing what we knew. */
  async loadRoster(): Promise<void> {
    const iq = new Element("iq", { type: "get" });
    iq.c("query", { xmlns: NS_ROSTER });
    const reply = await this.deps.request(iq);
    this.roster.clear();
    for (const item of reply.getChild("query", NS_ROSTER)?.getChildren("item") ?? []) this.applyItem(item);
  }

  /** RFC 6121 §2.1.6: a push from our own account updates the roster; anything else is ignored. */
  onRosterPush(iq: Element): undefined {
    const from = iq.attrs.from;
    if (from !== undefined && bareJid(from) !== this.deps.self()) return undefined; // §2.1.6 security
    for (const item of iq.getChild("query", NS_ROSTER)?.getChildren("item") ?? []) this.applyItem(item);
    return undefined;
  }

  private applyItem(item: Element): void {
    const jid = item.attrs.jid;
    if (!jid) return;
    const bare = bareJid(jid);
    const sub = item.attrs.subscription as string | undefined;
    if (sub === "remove") this.roster.delete(bare);
    else if (this.roster.has(bare) || this.roster.size < MAX_ROSTER) {
      this.roster.set(bare, sub === "to" || sub === "from" || sub === "both" ? sub : "none");
    }
  }

  /** A presence stanza: subscription requests are decided here; the rest is not ours. */
  async onPresence(presence: Element): Promise<void> {
    const from = presence.attrs.from;
    if (!from || presence.attrs.type !== "subscribe") return;
    const bare = bareJid(from);
    let ok = false;
    try {
      ok = (await this.decider?.isFriend(bare)) ?? false;
    } catch {
      ok = false;
    }
    if (!ok) {
      this.deps.log?.("info", "friendship refused", { jid: bare });
      this.presence("unsubscribed", bare); // RFC 6121 §3.2.1: refuse the request
      return;
    }
    this.befriend(bare);
  }

  /** Approve (pre-approve) the JID and, unless we already see it, ask to see it too. */
  befriend(bare: string): void {
    const sub = this.subscription(bare);
    if (sub !== "from" && sub !== "both") this.presence("subscribed", bare); // §3.1.5 / §3.4
    if (sub !== "to" && sub !== "both") this.presence("subscribe", bare); // §3.1.1
  }

  /** XEP-0324 §3.1 unfriend: cancel both directions. */
  unfriend(bare: string): void {
    this.presence("unsubscribed", bare); // RFC 6121 §3.2
    this.presence("unsubscribe", bare); // §3.3
  }

  private presence(type: string, to: string): void {
    this.deps.send(new Element("presence", { type, to }));
  }
}
