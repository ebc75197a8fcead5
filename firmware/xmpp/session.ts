/**
 * Establishing one session on a fresh connection: TLS stream, SASL, stream restart, then either
 * XEP-0198 resumption of the previous session or resource binding (plus the legacy session
 * request if a server still requires it) and enabling stream management.
 * References: RFC 6120 §6.4.6 (restart after SASL), §7 (resource binding), §7.6-§7.7 (bind
 * request and result); RFC 3921 §3 with draft-cridland-xmpp-session-01 (optional <session/>);
 * XEP-0198 §4, §6.
 */
import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { NS } from "../../server/xml/namespaces.ts";
import { type ConnectionOptions, StreamConnection } from "./connection.ts";
import { XmppRequestError } from "./errors.ts";
import { authenticate, type Credentials } from "./sasl.ts";
import { ClientStreamManagement, NS_SM } from "./stream-management.ts";

export interface SessionOptions extends ConnectionOptions, Credentials {
  readonly resource?: string;
  readonly streamManagement: boolean;
  /** Told about the connection as soon as it exists, so a stop() can cut a login short. */
  readonly onConnection?: (conn: StreamConnection) => void;
}

export interface Session {
  readonly conn: StreamConnection;
  readonly jid: string;
  readonly mechanism: string;
  /** Stream management of this session, if the server enabled it. */
  readonly sm: ClientStreamManagement | undefined;
  /** The previous session was resumed (XEP-0198 §6): no rebind happened. */
  readonly resumed: boolean;
  /** How many of the kept inbound stanzas arrived before the server started counting (XEP-0198 §4). */
  readonly uncounted: number;
}

/** An id for stanzas we originate (RFC 6120 §8.1.3: unique enough for the requester). */
export function newId(): string {
  return randomBytes(9).toString("base64url");
}

/** The resourcepart of a full JID (RFC 7622 §3.4), to ask for the same one when binding again. */
export function resourceOf(fullJid: string): string | undefined {
  const slash = fullJid.indexOf("/");
  return slash >= 0 ? fullJid.slice(slash + 1) : undefined;
}

/** A negotiation iq (bind, session) on a stream that is not yet delivering. */
async function negotiationIq(conn: StreamConnection, payload: Element): Promise<Element> {
  const id = newId();
  conn.send(new Element("iq", { type: "set", id }).cnode(payload).root());
  const reply = await conn.take((el) => el.name === "iq" && el.attrs.id === id, payload.name);
  if (reply.attrs.type === "error") throw new XmppRequestError(reply);
  return reply;
}

export async function openSession(
  opts: SessionOptions,
  previous: ClientStreamManagement | undefined,
): Promise<Session> {
  const conn = await StreamConnection.open(opts);
  opts.onConnection?.(conn);
  try {
    const mechanism = await authenticate(conn, opts);
    opts.log("debug", "authenticated", { mechanism });
    const features = await conn.openStream(); // RFC 6120 §6.4.6
    const smOffered = opts.streamManagement && features.getChild("sm", NS_SM) !== undefined;

    if (smOffered && previous?.token) {
      const resumed = await ClientStreamManagement.resume(conn, previous);
      if (resumed) {
        return { conn, jid: previous.token.jid, mechanism, sm: resumed, resumed: true, uncounted: 0 };
      }
      opts.log("info", "stream resumption refused; binding a new session");
    }

    // RFC 6120 §7.6: the server may ignore or change the resource we ask for.
    const bind = new Element("bind", { xmlns: NS.bind });
    if (opts.resource) bind.c("resource").t(opts.resource);
    const bound = await negotiationIq(conn, bind);
    const jid = bound.getChild("bind", NS.bind)?.getChildText("jid");
    if (!jid) throw new Error("the server bound no JID");

    // Old servers require the RFC 3921 session request unless they mark it <optional/>.
    const session = features.getChild("session", NS.session);
    if (session && !session.getChild("optional")) {
      await negotiationIq(conn, new Element("session", { xmlns: NS.session }));
    }

    if (smOffered) {
      const { sm, uncounted } = await ClientStreamManagement.enable(conn, jid);
      if (!sm) opts.log("warn", "the server refused to enable stream management");
      return { conn, jid, mechanism, sm, resumed: false, uncounted };
    }
    return { conn, jid, mechanism, sm: undefined, resumed: false, uncounted: 0 };
  } catch (err) {
    conn.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}
