/**
 * Finding the broker's thing registry and provisioning service with service discovery: the
 * domain's items, then each item's features.
 * References: XEP-0030 §3.1 (disco#info), §4.1 (disco#items); XEP-0347 §3.5 (finding the
 * registry: the disco walk over the server's components), XEP-0324 §3.2 (finding the provisioning
 * service the same way); digest §1.4.
 */
import { Element } from "ltx";

export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

/** Items we look at: a broker lists a handful of components; a long list is not worth walking. */
const MAX_ITEMS = 32;

type Request = (iq: Element, timeoutMs?: number) => Promise<Element>;

async function features(request: Request, jid: string, timeoutMs: number): Promise<Set<string>> {
  const iq = new Element("iq", { type: "get", to: jid });
  iq.c("query", { xmlns: NS_DISCO_INFO });
  try {
    const reply = await request(iq, timeoutMs);
    const query = reply.getChild("query", NS_DISCO_INFO);
    return new Set((query?.getChildren("feature") ?? []).map((f) => String(f.attrs.var ?? "")));
  } catch {
    return new Set();
  }
}

/**
 * For each wanted feature, the first of the domain's items (or the domain itself) that
 * advertises it. Features nobody offers are missing from the result.
 */
export async function discoverServices(
  request: Request,
  domain: string,
  wanted: readonly string[],
  timeoutMs = 10_000,
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const itemsIq = new Element("iq", { type: "get", to: domain });
  itemsIq.c("query", { xmlns: NS_DISCO_ITEMS });
  let items: string[] = [];
  try {
    const reply = await request(itemsIq, timeoutMs);
    items = (reply.getChild("query", NS_DISCO_ITEMS)?.getChildren("item") ?? [])
      .map((i) => String(i.attrs.jid ?? ""))
      .filter((j) => j !== "")
      .slice(0, MAX_ITEMS);
  } catch {
    items = []; // a server without disco#items (or that refuses) offers no components
  }
  const infos = await Promise.all(items.map((jid) => features(request, jid, timeoutMs)));
  items.forEach((jid, i) => {
    for (const feature of wanted) if (!found.has(feature) && infos[i]!.has(feature)) found.set(feature, jid);
  });
  return found;
}
