/**
 * Who may be a friend, read and control: the owner and the provisioning service always; anyone
 * else as the provisioning service decides (isFriend, canRead, canControl), with the answers
 * cached (LRU, persisted) until the service sends clearCache. Without a provisioning service only
 * the owner and the friends approved locally are let in.
 * References: XEP-0324 §3.1 (isFriend, canRead and canControl with the request's nodes, fields,
 * categories and parameters; narrowing: the listed nodes/fields/parameters are the only ones
 * allowed, an empty list allows everything requested; clearCache flushes the cache; caching that
 * survives power cycles), §3.3 of the digest (the owner and the provisioning server are answered
 * locally, without a round trip).
 */
import { Element } from "ltx";
import {
  type FieldCategory,
  type NodeRef,
  nodeKey,
  sameNode,
  type Tokens,
} from "../../extensions/sensor-data/index.ts";
import {
  decodeCanControlResponse,
  decodeCanReadResponse,
  decodeIsFriendResponse,
  encodeCanControl,
  encodeCanRead,
  encodeIsFriend,
  NS_PROVISIONING,
} from "../../provisioning/protocol.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { LruMap } from "./lru.ts";
import type { StoredDecision } from "./state.ts";

/** What a reader may see. Empty lists: everything that was asked for. */
export interface ReadAccess {
  readonly allowed: boolean;
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly categories: readonly FieldCategory[];
}

/** What a controller may change. Empty lists: everything that was asked for. */
export interface ControlAccess {
  readonly allowed: boolean;
  readonly nodes: readonly NodeRef[];
  readonly parameterNames: readonly string[];
}

/** XEP-0323 §3.7, XEP-0325 §3.2: a caller the decision did not let in gets forbidden. */
export function requireAllowed(access: { readonly allowed: boolean }, action: "read" | "control"): void {
  if (!access.allowed) throw new StanzaError("forbidden", `not allowed to ${action} this thing`);
}

/**
 * XEP-0324 §3.1, §3.4: the requested nodes the decision allows (all of them when the request or
 * the decision names none); forbidden when it allows none of those asked for.
 */
export function allowedNodes(
  requested: readonly NodeRef[],
  allowed: readonly NodeRef[],
  action: "read" | "control",
): readonly NodeRef[] {
  if (requested.length === 0 || allowed.length === 0) return requested;
  const permitted = requested.filter((n) => allowed.some((a) => sameNode(a, n)));
  if (permitted.length === 0) throw new StanzaError("forbidden", `not allowed to ${action} these nodes`);
  return permitted;
}

export interface ReadQuestion {
  readonly nodes: readonly NodeRef[];
  readonly fieldNames: readonly string[];
  readonly categories: readonly FieldCategory[];
  readonly tokens: Tokens;
}

export interface ControlQuestion {
  readonly nodes: readonly NodeRef[];
  readonly parameterNames: readonly string[];
  readonly tokens: Tokens;
}

export interface DeciderDeps {
  /** Sends an iq and resolves the result iq (the device's XMPP client). */
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  /** The provisioning service's address, or undefined when there is none. */
  provisioning(): string | undefined;
  /** The owner's bare JID, once claimed. */
  owner(): string | undefined;
  /** Friends approved on the thing itself (used only without a provisioning service). */
  isLocalFriend(bareJid: string): boolean;
  /** Called after the cache changed (to persist it). */
  cacheChanged(): void;
  readonly cacheSize?: number;
  readonly timeoutMs?: number;
}

/** Different questions asked of the provisioning service at the same time. */
const MAX_IN_FLIGHT = 32;

const EVERYTHING_READ: ReadAccess = { allowed: true, nodes: [], fieldNames: [], categories: [] };
const NOTHING_READ: ReadAccess = { allowed: false, nodes: [], fieldNames: [], categories: [] };
const EVERYTHING_CONTROL: ControlAccess = { allowed: true, nodes: [], parameterNames: [] };
const NOTHING_CONTROL: ControlAccess = { allowed: false, nodes: [], parameterNames: [] };

const sorted = (items: readonly string[]) => [...new Set(items)].sort();

function tokensKey(t: Tokens): string[] {
  return [t.serviceToken ?? "", t.deviceToken ?? "", t.userToken ?? ""];
}

export class AccessDecider {
  private readonly cache: LruMap<unknown>;
  private readonly inFlight = new Map<string, Promise<Element | undefined>>();

  constructor(private readonly deps: DeciderDeps) {
    this.cache = new LruMap(deps.cacheSize ?? 1000);
  }

  /** The owner or the provisioning service: always allowed, never asked about. */
  isTrusted(bareJid: string): boolean {
    return bareJid === this.deps.owner() || bareJid === this.deps.provisioning();
  }

  async isFriend(bareJid: string): Promise<boolean> {
    if (this.isTrusted(bareJid)) return true;
    const service = this.deps.provisioning();
    if (!service) return this.deps.isLocalFriend(bareJid);
    const key = JSON.stringify(["friend", bareJid]);
    const cached = this.cache.get(key) as boolean | undefined;
    if (cached !== undefined) return cached;
    const reply = await this.ask(service, encodeIsFriend(bareJid), "isFriendResponse");
    if (!reply) return false; // no answer: deny now, ask again next time (not cached)
    const result = decodeIsFriendResponse(reply).result;
    this.remember(key, result);
    return result;
  }

  async canRead(bareJid: string, q: ReadQuestion): Promise<ReadAccess> {
    const key = [
      "read",
      bareJid,
      sorted(q.nodes.map(nodeKey)),
      sorted(q.fieldNames),
      sorted(q.categories),
      tokensKey(q.tokens),
    ];
    return this.decide(bareJid, key, EVERYTHING_READ, NOTHING_READ, async (service) => {
      const query = { jid: bareJid, ...q, nodes: [...q.nodes], fieldNames: [...q.fieldNames] };
      const reply = await this.ask(service, encodeCanRead(query), "canReadResponse");
      if (!reply) return undefined;
      const answer = decodeCanReadResponse(reply);
      return answer.result
        ? {
            allowed: true,
            nodes: answer.nodes,
            fieldNames: answer.fieldNames,
            categories: answer.categories,
          }
        : NOTHING_READ;
    });
  }

  async canControl(bareJid: string, q: ControlQuestion): Promise<ControlAccess> {
    const key = [
      "control",
      bareJid,
      sorted(q.nodes.map(nodeKey)),
      sorted(q.parameterNames),
      tokensKey(q.tokens),
    ];
    return this.decide(bareJid, key, EVERYTHING_CONTROL, NOTHING_CONTROL, async (service) => {
      const query = { jid: bareJid, ...q, nodes: [...q.nodes], parameterNames: [...q.parameterNames] };
      const reply = await this.ask(service, encodeCanControl(query), "canControlResponse");
      if (!reply) return undefined;
      const answer = decodeCanControlResponse(reply);
      return answer.result
        ? { allowed: true, nodes: answer.nodes, parameterNames: answer.parameterNames }
        : NOTHING_CONTROL;
    });
  }

  /**
   * The course canRead and canControl share: the owner and the service may do everything; without
   * a service, the friends approved on the thing; else the cached answer, or the service's (cached).
   */
  private async decide<A>(
    bareJid: string,
    key: readonly unknown[],
    everything: A,
    nothing: A,
    askService: (service: string) => Promise<A | undefined>,
  ): Promise<A> {
    if (this.isTrusted(bareJid)) return everything;
    const service = this.deps.provisioning();
    if (!service) return this.deps.isLocalFriend(bareJid) ? everything : nothing;
    const cacheKey = JSON.stringify(key);
    const cached = this.cache.get(cacheKey) as A | undefined;
    if (cached) return cached;
    const access = await askService(service);
    if (access === undefined) return nothing; // no answer: deny now, ask again next time (not cached)
    this.remember(cacheKey, access);
    return access;
  }

  /** XEP-0324 §3.1 clearCache: forget every decision. */
  clear(): void {
    this.cache.clear();
    this.deps.cacheChanged();
  }

  get cachedDecisions(): number {
    return this.cache.size;
  }

  /** The cache as stored in the state file. */
  exportCache(): StoredDecision[] {
    return this.cache.entries().map(([key, answer]) => ({ key, answer }));
  }

  importCache(entries: readonly StoredDecision[]): void {
    this.cache.load(
      entries
        .filter((e) => typeof e?.key === "string" && e.answer !== undefined && e.answer !== null)
        .map((e) => [e.key, e.answer] as const),
    );
  }

  private remember(key: string, value: unknown): void {
    this.cache.set(key, value);
    this.deps.cacheChanged();
  }

  /**
   * Asks the service; undefined when it does not answer properly (then nothing is cached).
   * Identical questions in flight share one request, and at most MAX_IN_FLIGHT different ones
   * are asked at once: a flood of strangers cannot make the thing flood the service.
   */
  private ask(service: string, payload: Element, answer: string): Promise<Element | undefined> {
    const key = payload.toString();
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    if (this.inFlight.size >= MAX_IN_FLIGHT) return Promise.resolve(undefined);
    const p = this.askNow(service, payload, answer).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async askNow(service: string, payload: Element, answer: string): Promise<Element | undefined> {
    const iq = new Element("iq", { type: "get", to: service });
    iq.cnode(payload);
    try {
      const reply = await this.deps.request(iq, this.deps.timeoutMs ?? 15_000);
      return reply.getChild(answer, NS_PROVISIONING) ?? undefined;
    } catch {
      return undefined;
    }
  }
}
