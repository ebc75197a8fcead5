/**
 * Test helpers for ad-hoc commands, from the requester's side (an @xmpp/client test client): list
 * an entity's commands, run one stage, read the reply. No server code here: this is the client.
 * References: XEP-0050 §2.2 (command list), §2.4 (execution), §4.1–§4.3 (command, actions, note),
 * XEP-0004 §3.1 (submit forms).
 */
import assert from "node:assert/strict";
import { type Element, type TestClient, xml } from "../../test/support/xmpp-client.ts";

const NS_COMMANDS = "http://jabber.org/protocol/commands";
const NS_DATA = "jabber:x:data";
const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

export interface CommandReply {
  readonly status: string | undefined;
  readonly sessionid: string | undefined;
  readonly node: string | undefined;
  readonly lang: string | undefined;
  /** Allowed actions of the stage and the default (XEP-0050 §4.2). */
  readonly actions: readonly string[];
  readonly execute: string | undefined;
  readonly notes: readonly { type: string | undefined; text: string }[];
  readonly form: Element | undefined;
}

export interface RunOptions {
  readonly action?: string;
  readonly sessionid?: string;
  /** Fields of a submit form; omitted = no form. */
  readonly fields?: Record<string, string | readonly string[]>;
  /** xml:lang on the iq (XEP-0050 §3.7). */
  readonly lang?: string;
}

/** Sends one <command/> to `to`; resolves with the reply, rejects with the stanza error. */
export async function runCommand(
  client: TestClient,
  to: string,
  node: string,
  opts: RunOptions = {},
): Promise<CommandReply> {
  const command = xml("command", {
    xmlns: NS_COMMANDS,
    node,
    ...(opts.action !== undefined && { action: opts.action }),
    ...(opts.sessionid !== undefined && { sessionid: opts.sessionid }),
  });
  if (opts.fields) command.append(submitForm(opts.fields));
  const iq = xml("iq", { type: "set", to, ...(opts.lang && { "xml:lang": opts.lang }) }, command);
  const result = await client.iqCaller.request(iq);
  const reply = result.getChild("command", NS_COMMANDS);
  assert.ok(reply, "the result carries a <command/>");
  const actions = reply.getChild("actions");
  return {
    status: reply.attrs.status,
    sessionid: reply.attrs.sessionid,
    node: reply.attrs.node,
    lang: reply.attrs["xml:lang"],
    actions: actions?.getChildElements().map((a) => a.name) ?? [],
    execute: actions?.attrs.execute,
    notes: reply.getChildren("note").map((n) => ({ type: n.attrs.type, text: n.getText() })),
    form: reply.getChild("x", NS_DATA),
  };
}

/** XEP-0004 §3.1: a submit form with these fields. */
export function submitForm(fields: Record<string, string | readonly string[]>): Element {
  const form = xml("x", { xmlns: NS_DATA, type: "submit" });
  for (const [name, value] of Object.entries(fields)) {
    const values = typeof value === "string" ? [value] : value;
    form.append(xml("field", { var: name }, ...values.map((v) => xml("value", {}, v))));
  }
  return form;
}

/** The values of a field of a form element. */
export function fieldValues(form: Element | undefined, name: string): string[] {
  const field = form?.getChildren("field").find((f) => f.attrs.var === name);
  return field?.getChildren("value").map((v) => v.getText()) ?? [];
}

/** XEP-0050 §2.2: the commands `to` lists for this client, as node -> name. */
export async function listCommands(client: TestClient, to: string): Promise<Map<string, string>> {
  const result = await client.iqCaller.request(
    xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS })),
  );
  const items = result.getChild("query", NS_DISCO_ITEMS)?.getChildren("item") ?? [];
  for (const item of items) assert.equal(item.attrs.jid, to, "XEP-0050 §5: only the entity's own nodes");
  return new Map(items.map((i) => [String(i.attrs.node), String(i.attrs.name)]));
}

/** disco#info of `to` (optionally of one node): its identities as "category/type" and features. */
export async function discoInfo(client: TestClient, to: string, node?: string) {
  const result = await client.iqCaller.request(
    xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_INFO, ...(node && { node }) })),
  );
  const query = result.getChild("query", NS_DISCO_INFO);
  return {
    node: query?.attrs.node as string | undefined,
    identities: query?.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`) ?? [],
    names: query?.getChildren("identity").map((i) => i.attrs.name as string | undefined) ?? [],
    features: query?.getChildren("feature").map((f) => String(f.attrs.var)) ?? [],
  };
}

/**
 * Asserts the request fails with this stanza error condition and, if given, this XEP-0050 §4.4
 * specific condition (an element in the commands namespace inside <error/>).
 */
export async function refusedWith(p: Promise<unknown>, condition: string, specific?: string): Promise<void> {
  await assert.rejects(p, (err: { condition?: string; text?: string; element?: Element }) => {
    assert.equal(err.condition, condition, `condition (text: ${err.text})`);
    const app = err.element?.getChildElements().find((c) => c.attrs.xmlns === NS_COMMANDS);
    assert.equal(app?.name, specific, "XEP-0050 specific condition");
    return true;
  });
}
