/**
 * In-band account creation before authentication (XEP-0077 §3.1): open a TLS stream, ask for the
 * registration form, let the caller fill it in (plain fields, or a data form signed with an API
 * key as XEP-0348 describes), submit it, close the stream.
 * References: XEP-0077 §3.1 (get form, set, result or error: conflict, not-acceptable, ...), §4
 * (data forms); XEP-0348 §2 (signed forms); RFC 6120 §5 (TLS first: the password travels here).
 */
import { Element } from "ltx";
import { NS_REGISTER } from "../../extensions/register/form.ts";
import type { XmppClientOptions } from "./client.ts";
import { StreamConnection } from "./connection.ts";
import { XmppRequestError } from "./errors.ts";
import { newId } from "./session.ts";

export type RegisterOptions = Omit<
  XmppClientOptions,
  "username" | "password" | "resource" | "streamManagement" | "reconnect"
>;

async function iq(conn: StreamConnection, type: "get" | "set", payload: Element): Promise<Element> {
  const id = newId();
  conn.send(new Element("iq", { type, id }).cnode(payload).root());
  const reply = await conn.take((el) => el.name === "iq" && el.attrs.id === id, `registration ${type}`);
  if (reply.attrs.type === "error") throw new XmppRequestError(reply);
  if (reply.attrs.type !== "result") throw new Error(`unexpected reply type ${reply.attrs.type}`);
  return reply;
}

/**
 * Creates an account. `fill` gets the server's `<query xmlns='jabber:iq:register'>` and returns the
 * query to submit. Rejects with an XmppRequestError (`.condition`: conflict, not-acceptable,
 * forbidden, ...) if the server refuses.
 */
export async function registerAccount(
  opts: RegisterOptions,
  fill: (query: Element) => Element | Promise<Element>,
): Promise<void> {
  const log = opts.log ?? (() => {});
  const conn = await StreamConnection.open({
    ...opts,
    stepTimeoutMs: opts.requestTimeoutMs ?? 15_000,
    log,
  });
  try {
    const form = await iq(conn, "get", new Element("query", { xmlns: NS_REGISTER }));
    const query = form.getChild("query", NS_REGISTER);
    if (!query) throw new Error("the server sent no registration form");
    const filled = await fill(query);
    if (filled.name !== "query" || filled.attrs.xmlns !== NS_REGISTER) {
      throw new TypeError("fill() must return a <query xmlns='jabber:iq:register'>");
    }
    await iq(conn, "set", filled);
    log("info", "account registered", { domain: opts.domain });
  } finally {
    await conn.close();
  }
}
