/**
 * Rules a client session applies to what it sends and what it asks for: well-formed iqs, the
 * sender address it may claim, presence priority, the resource it binds, and the server's own
 * idle ping and its answer.
 * References: RFC 6120 §7.7.2.1 (resourcepart errors), §8.1.2.1 (from stamping), §8.2.3 (iq
 * rules), RFC 6121 §4.7.2.3 (priority range), XEP-0199 §4.1 (server-to-client ping).
 */
import { randomUUID } from "node:crypto";
import { Element } from "ltx";
import { type Jid, normalizeResourcepart, tryParseJid } from "../jid.ts";
import { NS } from "../xml/namespaces.ts";

const IDLE_PING_PREFIX = "hanse-idle-";

/** RFC 6120 §8.2.3: id required; type one of four; get/set carry exactly one child. */
export function iqProblem(iq: Element): string | undefined {
  const type = iq.attrs.type;
  if (!iq.attrs.id) return "an iq needs an id";
  if (type !== "get" && type !== "set" && type !== "result" && type !== "error") return "bad iq type";
  if ((type === "get" || type === "set") && iq.getChildElements().length !== 1) {
    return "an iq get or set carries exactly one child element";
  }
  return undefined;
}

/**
 * RFC 6120 §8.1.2.1: whether a `from` that is not literally the session's full or bare JID still
 * names it (a client may only send as itself).
 */
export function namesSelf(from: string, jid: Jid): boolean {
  const parsed = tryParseJid(from);
  return parsed !== undefined && (parsed.full === jid.full || parsed.full === jid.bare);
}

/** RFC 6121 §4.7.2.3: the <priority/> of an available presence, clamped to -128..127 (0 if absent). */
export function presencePriority(presence: Element): number {
  const priority = Number.parseInt(presence.getChildText("priority") ?? "0", 10);
  return Number.isFinite(priority) ? Math.max(-128, Math.min(127, priority)) : 0;
}

/**
 * The resource to bind: the requested one normalized, or one we make up when none was asked for.
 * Throws a JidError for a resourcepart that is not allowed (RFC 6120 §7.7.2.1).
 */
export function resourceToBind(requested: string | null | undefined): string {
  return requested ? normalizeResourcepart(requested) : `hanse-${randomUUID().slice(0, 8)}`;
}

/** XEP-0199 §4.1: the ping the server sends a quiet client. */
export function idlePing(from: string, to: Jid, sentAt: number): Element {
  const ping = new Element("iq", { type: "get", id: `${IDLE_PING_PREFIX}${sentAt}`, from, to: to.full });
  ping.c("ping", { xmlns: NS.ping });
  return ping;
}

/** The client's answer to our idle ping (which needs no routing). */
export function isIdlePingAnswer(iq: Element): boolean {
  const type = iq.attrs.type;
  return (type === "result" || type === "error") && iq.attrs.id?.startsWith(IDLE_PING_PREFIX) === true;
}
