/**
 * Telling things that decisions changed: clearCache (iq set) to each online resource of the
 * thing; a thing that is offline, or does not acknowledge, is remembered in the database and
 * told again when it next comes online. Friendship rules also send friend/unfriend
 * recommendations (messages to the bare JID, so offline storage keeps them).
 * References: XEP-0324 §3.1 (friend, unfriend), §3.5 (clearCache as iq set; "If the device was
 * offline ... the provisioning server must send the clear cache command as soon as the device
 * comes online again"), §6.2 of the XEP (caching).
 */
import { Element } from "ltx";
import type { LocalSession, ModuleApi } from "../server/modules/module.ts";
import type { AuditLog } from "./audit.ts";
import { encodeClearCache, encodeFriend, encodeUnfriend } from "./protocol.ts";
import type { ProvisioningStore } from "./store.ts";

export class ThingNotifier {
  /** Things owed a clearCache (mirrors prov_pending_clear, so a login costs no query). */
  private readonly owed = new Set<string>();
  private readonly api: ModuleApi;
  private readonly store: ProvisioningStore;
  private readonly audit: AuditLog;
  private readonly timeoutMs: number;
  private readonly track: (task: Promise<unknown>, what: string) => void;

  constructor(deps: {
    api: ModuleApi;
    store: ProvisioningStore;
    audit: AuditLog;
    timeoutMs: number;
    track: (task: Promise<unknown>, what: string) => void;
  }) {
    this.api = deps.api;
    this.store = deps.store;
    this.audit = deps.audit;
    this.timeoutMs = deps.timeoutMs;
    this.track = deps.track;
  }

  async load(): Promise<void> {
    for (const thing of await this.store.pendingClears()) this.owed.add(thing);
  }

  /** Sends clearCache to every resource of the thing; remembers it if none acknowledged. */
  async clearCache(thing: string, why: string): Promise<boolean> {
    const sessions = this.api.sessionsOf(thing);
    const acks = await Promise.all(sessions.map((s) => this.ask(s)));
    const done = acks.some((ok) => ok);
    if (done) {
      if (this.owed.delete(thing)) await this.store.settlePendingClear(thing);
      this.audit.record({
        actor: this.api.domain,
        action: "clear-cache-sent",
        thing,
        detail: { why, resources: sessions.filter((_, i) => acks[i]).map((s) => s.jid.resource) },
      });
    } else {
      this.owed.add(thing);
      await this.store.owePendingClear(thing);
      this.audit.record({
        actor: this.api.domain,
        action: "clear-cache-deferred",
        thing,
        detail: { why, reason: sessions.length === 0 ? "offline" : "not acknowledged" },
      });
    }
    return done;
  }

  /** A session came online: settle a clearCache it is owed. */
  sessionAvailable(session: LocalSession): void {
    const thing = session.jid.bare;
    if (!this.owed.has(thing)) return;
    this.track(this.clearCache(thing, "owed since the thing was offline"), "owed clearCache");
  }

  /** XEP-0324 §3.1: recommendations go to the bare JID; offline storage keeps them. */
  recommend(thing: string, kind: "friend" | "unfriend", jid: string): void {
    const message = new Element("message", { type: "normal", to: thing });
    message.cnode(kind === "friend" ? encodeFriend(jid) : encodeUnfriend(jid));
    this.api.send(message);
    this.audit.record({ actor: this.api.domain, action: `recommend-${kind}`, thing, caller: jid });
  }

  private async ask(session: LocalSession): Promise<boolean> {
    const iq = new Element("iq", { type: "set", to: session.jid.full });
    iq.cnode(encodeClearCache());
    try {
      const reply = await this.api.request(iq, this.timeoutMs);
      return reply.attrs.type === "result";
    } catch {
      return false; // an error reply, a timeout, or the broker stopping
    }
  }
}
