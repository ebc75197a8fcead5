/**
 * Test helpers for rosters and presence, shared by the integration and restart tests: logging in
 * as an "interested" resource, roster queries, and predicates for pushes and presence.
 * References: RFC 6121 §2.1.6 (roster push), §2.2 (interested resource), §4.2 (initial presence).
 */
import assert from "node:assert/strict";
import { type Element, type TestClient, xml } from "../../test/support/xmpp-client.ts";

export const NS_ROSTER = "jabber:iq:roster";

export interface LoginOptions {
  readonly resource?: string;
  /** Ask for the roster first (RFC 6121 §2.2: the resource becomes interested). Default true. */
  readonly roster?: boolean;
  /** Send initial presence (default true); an Element is sent as is. */
  readonly presence?: boolean | Element;
}

export type Connect = (username: string, resource?: string) => Promise<TestClient>;

/** Logs in, answers roster pushes like a good client, and optionally gets the roster and goes online. */
export async function loginAs(
  connect: Connect,
  username: string,
  opts: LoginOptions = {},
): Promise<TestClient> {
  const client = await connect(username, opts.resource);
  // RFC 6121 §2.1.6: a client acknowledges pushes.
  client.iqCallee.set(NS_ROSTER, "query", () => ({}));
  if (opts.roster ?? true) await getRoster(client);
  const presence = opts.presence ?? true;
  if (presence) {
    await client.send(presence === true ? xml("presence") : presence);
    await ping(client);
  }
  return client;
}

/** A round trip to the server: everything this client sent before has been processed. */
export async function ping(client: TestClient): Promise<void> {
  await client.iqCaller.request(xml("iq", { type: "get" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
}

/** The roster result (the <query/>), or undefined for an empty result (XEP-0237: ver is current). */
export async function getRoster(client: TestClient, ver?: string): Promise<Element | undefined> {
  const result = await client.iqCaller.request(
    xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER, ...(ver !== undefined ? { ver } : {}) })),
  );
  return result.getChild("query", NS_ROSTER) ?? undefined;
}

/** The roster item for `jid` (undefined if none). */
export async function rosterItem(client: TestClient, jid: string): Promise<Element | undefined> {
  const query = await getRoster(client);
  return query?.getChildren("item").find((i) => i.attrs.jid === jid);
}

/** Sets a roster item; resolves with the result or rejects with the stanza error. */
export function setItem(
  client: TestClient,
  attrs: Record<string, string>,
  groups: readonly string[] = [],
): Promise<Element> {
  const item = xml("item", attrs, ...groups.map((g) => xml("group", {}, g)));
  return client.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_ROSTER }, item)));
}

export function isPush(jid?: string): (s: Element) => boolean {
  return (s) => {
    if (!s.is("iq") || s.attrs.type !== "set") return false;
    const item = s.getChild("query", NS_ROSTER)?.getChild("item");
    return item !== undefined && (jid === undefined || item.attrs.jid === jid);
  };
}

/** client.nextStanza, failing with what was awaited and what arrived instead. */
export async function expect(
  client: TestClient,
  predicate: (s: Element) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<Element> {
  try {
    return await client.nextStanza(predicate, timeoutMs);
  } catch {
    const got = client.inbox.map((s) => s.toString()).join("\n  ");
    throw new Error(`${client.jid?.toString()}: no ${what}; unclaimed:\n  ${got}`);
  }
}

/** Waits for the next roster push about `jid` and returns its item. */
export async function nextPush(client: TestClient, jid: string, timeoutMs?: number): Promise<Element> {
  const push = await expect(client, isPush(jid), `roster push for ${jid}`, timeoutMs);
  return push.getChild("query", NS_ROSTER)!.getChild("item")!;
}

/** Waits for a push that shows `jid` with `subscription` (skipping earlier pushes for it). */
export async function pushShowing(client: TestClient, jid: string, subscription: string): Promise<Element> {
  const push = await expect(
    client,
    (s) =>
      isPush(jid)(s) && s.getChild("query", NS_ROSTER)!.getChild("item")!.attrs.subscription === subscription,
    `roster push for ${jid} with subscription ${subscription}`,
  );
  return push.getChild("query", NS_ROSTER)!.getChild("item")!;
}

/** Asserts an item's subscription attributes. */
export function assertItem(
  item: Element | undefined,
  expected: { subscription: string; ask?: string; approved?: string },
): void {
  assert.ok(item, "a roster item");
  assert.deepEqual(
    { subscription: item.attrs.subscription, ask: item.attrs.ask, approved: item.attrs.approved },
    { subscription: expected.subscription, ask: expected.ask, approved: expected.approved },
    `item ${item.attrs.jid}`,
  );
}

export function isPresence(from: string, type?: string): (s: Element) => boolean {
  return (s) => s.is("presence") && s.attrs.from === from && s.attrs.type === type;
}

/** Waits for presence from `from` of `type` (undefined = available). */
export function presenceFrom(
  client: TestClient,
  from: string,
  type?: string,
  timeoutMs?: number,
): Promise<Element> {
  return expect(client, isPresence(from, type), `presence ${type ?? "available"} from ${from}`, timeoutMs);
}

/** Resolves after `ms` (for checks that something did NOT arrive). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
