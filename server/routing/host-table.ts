/**
 * The hosts this broker serves (its domain and in-process components) and what modules attached
 * to each: stanza hooks by priority, iq handlers, disco identities and features.
 * References: RFC 6120 §10.4 (local domain), XEP-0030 §3 (info), §4 (items), XEP-0114 (components,
 * here in-process).
 */
import type { IqHandler, IqOptions, StanzaHook, Target } from "../modules/module.ts";
import type { StanzaKind } from "../xml/stanza.ts";

export interface Identity {
  readonly category: string;
  readonly type: string;
  readonly name?: string;
}

interface HookEntry {
  readonly hook: StanzaHook;
  readonly priority: number;
}

export interface IqRoute {
  readonly handler: IqHandler;
  readonly fromOthers: boolean;
}

/** Inserts keeping descending priority; equal priorities keep registration order. */
export function insertByPriority(list: HookEntry[], hook: StanzaHook, priority: number): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.priority < priority) i--;
  list.splice(i, 0, { hook, priority });
}

export class Host {
  readonly domain: string;
  /** Components (registry.<domain>, …) have no accounts: their bare/full JIDs are nodes. */
  readonly isComponent: boolean;
  readonly name: string | undefined;
  readonly identities: Identity[] = [];
  readonly features = new Set<string>();
  private readonly hooks = new Map<string, HookEntry[]>();
  private readonly iqRoutes = new Map<string, IqRoute>();

  constructor(domain: string, opts: { isComponent: boolean; name?: string }) {
    this.domain = domain;
    this.isComponent = opts.isComponent;
    this.name = opts.name;
  }

  addHook(kind: StanzaKind, target: Target, hook: StanzaHook, priority = 0): void {
    const key = `${kind}/${target}`;
    let list = this.hooks.get(key);
    if (!list) {
      list = [];
      this.hooks.set(key, list);
    }
    insertByPriority(list, hook, priority);
  }

  hooksFor(kind: StanzaKind, target: Target): readonly HookEntry[] {
    return this.hooks.get(`${kind}/${target}`) ?? [];
  }

  addIq(type: "get" | "set", ns: string, name: string, handler: IqHandler, opts: IqOptions = {}): void {
    const target = opts.to ?? "host";
    const key = iqKey(target, type, ns, name);
    if (this.iqRoutes.has(key))
      throw new Error(`iq ${type} {${ns}}${name} on ${target} of ${this.domain} is taken`);
    this.iqRoutes.set(key, { handler, fromOthers: opts.fromOthers ?? false });
    // XEP-0030 §3: a host answering a namespace advertises it.
    if (target === "host") this.features.add(ns);
  }

  iqRoute(target: "host" | "bare", type: string, ns: string, name: string): IqRoute | undefined {
    return this.iqRoutes.get(iqKey(target, type, ns, name));
  }
}

function iqKey(target: string, type: string, ns: string, name: string): string {
  return `${target}|${type}|${ns}|${name}`;
}
