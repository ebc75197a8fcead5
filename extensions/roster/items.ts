/**
 * Roster items on the wire: reading a roster set (with its error cases) and writing items for
 * roster results and pushes.
 * References: RFC 6121 §2.1.2 (item attributes), §2.1.2.1 (approved), §2.1.2.2 (ask), §2.1.2.5
 * (subscription; in a roster set only "remove" counts), §2.1.2.6 (group), §2.3.3 (error cases),
 * §2.5 (removal); RFC 7622 (JIDs).
 */
import { Element } from "ltx";
import { type Jid, type JidError, parseJid } from "../../server/jid.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import type { RosterItem } from "./store.ts";

export const NS_ROSTER = "jabber:iq:roster";

export interface ItemLimits {
  /** Longest 'name', in characters (code points). */
  readonly maxNameLength: number;
  /** Longest group name, in characters. */
  readonly maxGroupLength: number;
  /** Most groups on one item. */
  readonly maxGroups: number;
}

export type RosterSet =
  | { readonly kind: "remove"; readonly jid: Jid }
  | { readonly kind: "set"; readonly jid: Jid; readonly name: string | undefined; readonly groups: string[] };

const length = (s: string) => [...s].length;

/** Reads the <query/> of a roster set; throws the StanzaError RFC 6121 §2.3.3 asks for. */
export function parseRosterSet(query: Element, limits: ItemLimits): RosterSet {
  const items = query.getChildElements().filter((c) => c.name === "item");
  // RFC 6121 §2.3.3 (bad-request 1): exactly one <item/>.
  if (items.length !== 1) throw new StanzaError("bad-request", "a roster set carries exactly one <item/>");
  const item = items[0]!;
  const raw = item.attrs.jid;
  if (!raw) throw new StanzaError("bad-request", "the <item/> has no 'jid'");
  let jid: Jid;
  try {
    jid = parseJid(raw);
  } catch (err) {
    // RFC 6120 §8.3.3.8: an address that breaks the JID rules.
    throw new StanzaError("jid-malformed", `invalid item JID: ${(err as JidError).message}`);
  }
  // RFC 6121 §2.1.2.5: in a roster set only subscription='remove' means anything; 'ask' and
  // 'approved' are the server's to set (§2.1.2.1, §2.1.2.2) and are ignored.
  if (item.attrs.subscription === "remove") return { kind: "remove", jid };

  const name = item.attrs.name || undefined;
  // RFC 6121 §2.3.3 (not-acceptable 1): a 'name' longer than the server allows.
  if (name !== undefined && length(name) > limits.maxNameLength) {
    throw new StanzaError("not-acceptable", `the name is longer than ${limits.maxNameLength} characters`);
  }
  const groups: string[] = [];
  for (const group of item.getChildren("group")) {
    const text = group.text();
    // RFC 6121 §2.3.3 (not-acceptable 2 and 3): empty, or longer than the server allows.
    if (text.length === 0) throw new StanzaError("not-acceptable", "a <group/> is empty");
    if (length(text) > limits.maxGroupLength) {
      throw new StanzaError(
        "not-acceptable",
        `a group name is longer than ${limits.maxGroupLength} characters`,
      );
    }
    // RFC 6121 §2.3.3 (bad-request 2): duplicate groups.
    if (groups.includes(text)) throw new StanzaError("bad-request", `the group "${text}" is listed twice`);
    groups.push(text);
  }
  if (groups.length > limits.maxGroups) {
    throw new StanzaError("not-acceptable", `an item may be in at most ${limits.maxGroups} groups`);
  }
  return { kind: "set", jid, name, groups };
}

/** RFC 6121 §2.1.2: an item as roster results and pushes show it. */
export function itemElement(item: RosterItem): Element {
  const { state } = item;
  const attrs: Record<string, string> = { jid: item.jid, subscription: state.subscription };
  if (item.name !== undefined) attrs.name = item.name;
  if (state.pendingOut) attrs.ask = "subscribe"; // §2.1.2.2
  if (state.approved) attrs.approved = "true"; // §2.1.2.1
  const el = new Element("item", attrs);
  for (const group of item.groups) el.c("group").t(group);
  return el;
}

/** RFC 6121 §2.5.2: the push that tells interested resources an item is gone. */
export function removedItemElement(jid: string): Element {
  return new Element("item", { jid, subscription: "remove" });
}
