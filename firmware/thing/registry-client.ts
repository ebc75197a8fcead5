/**
 * The thing's side of the thing registry: register the meta tags with a random secret KEY, offer
 * the claim URI, and answer the registry's claimed / removed / disowned requests.
 * References: XEP-0347 §3.6 (register; a claimed thing is answered with `claimed`), §3.9
 * (claimed: the thing learns its owner, stops registering, blanks KEY), §3.10 (removed), §3.17
 * (disowned: acknowledge, then register again with a new KEY), §5.2 (tags), §6.5 (KEY: random,
 * secret, only until claimed); digest §6.3 (the iotdisco claim URI with R = the registry).
 */
import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { encodeIotDisco } from "../../thing-registry/iotdisco.ts";
import { NS_DISCOVERY, tagElement } from "../../thing-registry/protocol.ts";
import { KEY, nameKey, type Tag } from "../../thing-registry/tags.ts";
import type { Log } from "../xmpp/connection.ts";
import type { IqHandler } from "../xmpp/iq.ts";
import { bareJid, isFrom } from "./sender.ts";
import type { StateStore } from "./state.ts";

/** Meta tags as an application writes them: numbers become numeric tags (XEP-0347 §3.6). */
export type MetaTags = Readonly<Record<string, string | number>>;

export function toTags(tags: MetaTags): Tag[] {
  return Object.entries(tags)
    .filter(([name]) => nameKey(name) !== KEY) // KEY is the SDK's, never the application's
    .map(([name, value]) =>
      typeof value === "number"
        ? { type: "num" as const, name, value }
        : { type: "str" as const, name, value },
    );
}

export interface RegistryEvents {
  claimed(owner: string, isPublic: boolean): void;
  removed(): void;
  disowned(formerOwner: string | undefined): void;
  registered(): void;
}

export interface RegistryClientDeps {
  readonly store: StateStore;
  readonly tags: readonly Tag[];
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  onIq(type: "get" | "set", ns: string, name: string, handler: IqHandler): void;
  readonly events: RegistryEvents;
  readonly log?: Log;
}

export class RegistryClient {
  private registry: string | undefined;

  constructor(private readonly deps: RegistryClientDeps) {
    deps.onIq("set", NS_DISCOVERY, "claimed", (iq) => this.onClaimed(iq));
    deps.onIq("set", NS_DISCOVERY, "removed", (iq) => this.onRemoved(iq));
    deps.onIq("set", NS_DISCOVERY, "disowned", (iq) => this.onDisowned(iq));
  }

  private get state() {
    return this.deps.store.state;
  }

  /** Only the registry we registered with may tell us about claims (anyone could send these). */
  private checkSender(iq: Element): void {
    if (!isFrom(iq, this.registry)) {
      throw new StanzaError("forbidden", "only the thing registry may send this");
    }
  }

  /** The iotdisco URI an owner claims the thing with; undefined once claimed (KEY is gone). */
  claimUri(): string | undefined {
    if (this.state.owner || !this.state.key || !this.registry) return undefined;
    return encodeIotDisco({
      kind: "claim",
      tags: [...this.deps.tags, { type: "str", name: KEY, value: this.state.key }],
      registry: this.registry,
    });
  }

  /**
   * Registers unless claimed. A thing that registered before and is still unclaimed registers
   * the same tags and KEY again: that is how it learns of a claim made while it was offline
   * (§3.6), and its claim URI stays the same.
   */
  async start(registry: string | undefined): Promise<void> {
    this.registry = registry;
    if (!registry) return;
    if (this.state.owner) return; // §3.9: a claimed thing stops registering
    if (this.state.registry && this.state.registry !== registry) this.state.key = undefined;
    await this.register(registry);
  }

  private async register(registry: string): Promise<void> {
    this.state.key ??= randomBytes(16).toString("hex"); // §6.5: random, unguessable
    this.state.registry = registry;
    await this.deps.store.save(); // KEY on disk before anyone can see it in a URI
    const iq = new Element("iq", { type: "set", to: registry });
    const register = iq.c("register", { xmlns: NS_DISCOVERY });
    for (const tag of this.deps.tags) register.cnode(tagElement(tag));
    register.cnode(tagElement({ type: "str", name: KEY, value: this.state.key }));
    const reply = await this.deps.request(iq);
    this.state.registered = true;
    await this.deps.store.save();
    const claimed = reply.getChild("claimed", NS_DISCOVERY);
    if (claimed?.attrs.jid) {
      // §3.6: already claimed (while we were away): the reply names the owner.
      await this.claim(bareJid(claimed.attrs.jid), claimed.attrs.public !== "false");
      return;
    }
    this.deps.events.registered();
  }

  private async claim(owner: string, isPublic: boolean): Promise<void> {
    const known = this.state.owner === owner;
    this.state.owner = owner;
    this.state.public = isPublic;
    this.state.key = undefined; // §6.5: blank KEY once claimed
    await this.deps.store.save();
    if (!known) this.deps.events.claimed(owner, isPublic);
  }

  private async onClaimed(iq: Element): Promise<undefined> {
    this.checkSender(iq);
    const claimed = iq.getChild("claimed", NS_DISCOVERY)!;
    const owner = claimed.attrs.jid;
    if (!owner) throw new StanzaError("bad-request", "claimed without a jid");
    if (claimed.attrs.nodeId) return undefined; // a node's claim: the concentrator's business
    await this.claim(bareJid(owner), claimed.attrs.public !== "false");
    return undefined;
  }

  private async onRemoved(iq: Element): Promise<undefined> {
    this.checkSender(iq);
    // §3.10: no longer in the registry; the owner stays the owner.
    this.state.registered = false;
    await this.deps.store.save();
    this.deps.events.removed();
    return undefined;
  }

  private async onDisowned(iq: Element): Promise<undefined> {
    this.checkSender(iq);
    const former = this.state.owner;
    this.state.owner = undefined;
    this.state.public = undefined;
    this.state.registered = false;
    this.state.key = undefined; // §3.17: the registry set a random KEY; we register our own
    await this.deps.store.save();
    this.deps.events.disowned(former);
    // §3.17: acknowledge first; register again (new KEY) once the registry has let go.
    const registry = this.registry!;
    setTimeout(() => {
      this.register(registry).catch((err: Error) =>
        this.deps.log?.("warn", "registering again after disown failed", { error: err.message }),
      );
    }, 1000);
    return undefined;
  }
}
