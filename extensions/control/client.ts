/**
 * The client side of control: send a set as an iq and learn what was applied; fetch the
 * control form.
 * References: XEP-0325 §3.1 (iq set answered by setResponse; empty means applied as asked), §3.3
 * (getForm returns the data form directly), §3.1.3 (errors with paramError).
 */
import { Element } from "ltx";
import { type DataForm, NS_DATA, parseForm } from "../data-forms/form.ts";
import type { NodeRef } from "../sensor-data/node-ref.ts";
import type { StanzaPort } from "../sensor-data/port.ts";
import { NS_CONTROL } from "./parameters.ts";
import { type ControlSet, decodeSetResponse, encodeGetForm, encodeSetRequest } from "./set.ts";

function iqId(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 12)}`;
}

/**
 * Sends the set as an iq and resolves with the nodes and parameters that were applied: those
 * the device listed, or, for an empty setResponse, everything that was asked. Rejects with the
 * device's error (a paramError, if any, is in the error element).
 */
export async function sendControl(
  port: StanzaPort,
  to: string,
  s: ControlSet,
  opts: { timeoutMs?: number } = {},
): Promise<{ nodes: NodeRef[]; parameterNames: string[] }> {
  const iq = new Element("iq", { type: "set", to, id: iqId("ctl") });
  iq.cnode(encodeSetRequest(s));
  const result = await port.request(iq, opts.timeoutMs);
  const response = result.getChild("setResponse", NS_CONTROL);
  const narrowed = response ? decodeSetResponse(response) : { nodes: [], parameterNames: [] };
  if (narrowed.nodes.length > 0 || narrowed.parameterNames.length > 0) return narrowed;
  const formNames = (s.form?.fields ?? []).flatMap((f) => (f.var && f.var !== "xdd session" ? [f.var] : []));
  return { nodes: [...s.nodes], parameterNames: [...s.parameters.map((p) => p.name), ...formNames] };
}

/** Fetches the control form of the device, or the one common to the given nodes. */
export async function getControlForm(
  port: StanzaPort,
  to: string,
  nodes: readonly NodeRef[] = [],
  opts: { timeoutMs?: number } = {},
): Promise<DataForm> {
  const iq = new Element("iq", { type: "get", to, id: iqId("ctlform") });
  iq.cnode(encodeGetForm(nodes));
  const result = await port.request(iq, opts.timeoutMs);
  const x = result.getChild("x", NS_DATA);
  if (!x) throw new Error(`${to} answered getForm without a data form`);
  return parseForm(x);
}
