/**
 * Broker-side enforcement (opt-in per thing, set by its owner): readouts (XEP-0323 `req`) and
 * control (XEP-0325 `set`) addressed to an enforced thing are decided here, before routing. A
 * denied or undecided request is answered `forbidden` by the broker and never reaches the device
 * (an undecided one also raises the owner's question); an allowed one passes untouched.
 * The hook runs for every routed stanza, so it returns at once unless the addressee is an
 * enforced local thing and the payload is one of the two requests.
 * References: XEP-0323 §3.1 (req: iq get), XEP-0325 §3.1–§3.2 (set: iq set or message),
 * XEP-0324 §3.3–§3.4 (the decisions), RFC 6120 §8.3.3.5 (forbidden).
 */
import type { Element } from "ltx";
import { NS_CONTROL } from "../extensions/control/parameters.ts";
import { decodeSetRequest } from "../extensions/control/set.ts";
import { NS_SENSOR_DATA } from "../extensions/sensor-data/namespace.ts";
import { decodeReadoutRequest } from "../extensions/sensor-data/request.ts";
import type { StanzaHook } from "../server/modules/module.ts";
import { StanzaError } from "../server/xml/errors.ts";
import type { DecisionEngine } from "./decisions.ts";
import type { AccessRequest } from "./rules.ts";

export interface EnforcementDeps {
  readonly domain: string;
  /** Enforced things (bare JID → owner), kept current by the service. */
  readonly enforced: ReadonlyMap<string, string>;
  readonly engine: DecisionEngine;
}

/** The access request a stanza makes of the thing, or undefined if it is not one we guard. */
function accessRequest(kind: string, stanza: Element, caller: string): AccessRequest | undefined {
  const type = stanza.attrs.type;
  if (kind === "iq" && type === "get") {
    const req = stanza.getChild("req", NS_SENSOR_DATA);
    if (!req) return undefined;
    const r = decodeReadoutRequest(req); // bad-request for a malformed request, as the device would
    return {
      kind: "read",
      caller,
      nodes: r.nodes,
      fieldNames: r.fieldNames,
      categories: r.categories,
      parameterNames: [],
    };
  }
  if ((kind === "iq" && type === "set") || (kind === "message" && type !== "error")) {
    const set = stanza.getChild("set", NS_CONTROL);
    if (!set) return undefined;
    const s = decodeSetRequest(set);
    return {
      kind: "control",
      caller,
      nodes: s.nodes,
      fieldNames: [],
      categories: [],
      parameterNames: [...new Set(s.parameters.map((p) => p.name))],
    };
  }
  return undefined;
}

export function enforcementPolicy(deps: EnforcementDeps): StanzaHook {
  const { domain, enforced, engine } = deps;
  return async ({ kind, stanza, from, to }) => {
    if (enforced.size === 0 || kind === "presence") return undefined;
    if (to.domain !== domain || to.local === "" || !enforced.has(to.bare)) return undefined;
    if (from.bare === to.bare) return undefined;
    const req = accessRequest(kind, stanza, from.bare);
    if (!req) return undefined;
    const verdict = await engine.decide(to.bare, req, "broker");
    if (verdict.outcome === "allow") return undefined; // untouched: the device narrows itself
    throw new StanzaError("forbidden", "the owner of this thing has not allowed this request");
  };
}
