/**
 * Every XML namespace Hanse speaks, in one place.
 * References: RFC 6120 §4.8, §5, §6, §7, §8.3, §9; RFC 6121; XEP-0030, XEP-0092, XEP-0199, XEP-0202,
 * XEP-0368.
 */
export const NS = {
  client: "jabber:client",
  server: "jabber:server",
  stream: "http://etherx.jabber.org/streams",
  streamErrors: "urn:ietf:params:xml:ns:xmpp-streams",
  stanzaErrors: "urn:ietf:params:xml:ns:xmpp-stanzas",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  xml: "http://www.w3.org/XML/1998/namespace",
  discoInfo: "http://jabber.org/protocol/disco#info",
  discoItems: "http://jabber.org/protocol/disco#items",
  ping: "urn:xmpp:ping",
  version: "jabber:iq:version",
  time: "urn:xmpp:time",
  delay: "urn:xmpp:delay",
  /** XEP-0440: which channel-binding types the server supports. */
  saslChannelBinding: "urn:xmpp:sasl-cb:0",
} as const;

/** Our own extensions live under this prefix (DESIGN.md §1.4), one versioned namespace each. */
export const HANSE_NS_PREFIX = "urn:hanse:";
