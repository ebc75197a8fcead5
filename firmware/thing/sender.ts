/**
 * Who sent a stanza, as the thing compares it: the bare JID, lower-cased, so that the owner, the
 * friends on the roster, the registry and the provisioning service match however a peer spells
 * them; and whether a stanza comes from the one service trusted to send it.
 * References: RFC 7622 §3.2–§3.3 (domainpart and localpart compare case-insensitively); RFC 6120
 * §8.1.2.1 (the server stamps `from`); XEP-0324 §3.1 (clearCache, friend/unfriend only from the
 * provisioning service); XEP-0347 §3.9–§3.17 (claimed/removed/disowned only from the registry).
 */
import type { Element } from "ltx";

/** The bare JID of an address, lower-cased (RFC 7622 §3.2–§3.3). */
export function bareJid(jid: string): string {
  return jid.split("/")[0]!.toLowerCase();
}

/** The bare JID of the stanza's sender ("" when it has no `from`). */
export function senderOf(stanza: Element): string {
  return bareJid(stanza.attrs.from ?? "");
}

/** Whether the stanza comes from `trusted` (a service's bare JID); never when there is none. */
export function isFrom(stanza: Element, trusted: string | undefined): boolean {
  return !!trusted && senderOf(stanza) === bareJid(trusted);
}
