/**
 * The control operations on the wire: `set` (typed parameters or a submitted form), its
 * `setResponse`, and `getForm`.
 * References: XEP-0325 §3.1 (set as message or iq; setResponse empty when all was applied, or
 * listing the nodes and parameters actually used), §3.2 (typed parameters, applied in document
 * order), §3.3 (getForm; set with an x type='submit' form), §3.5 (node elements for
 * concentrators; validate everything before acting), §3.6 (tokens on set and getForm), schema.
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { type DataForm, formToXml, NS_DATA, parseForm } from "../data-forms/form.ts";
import { type NodeRef, readNodeRef, readNodeRefs, writeNodeRef } from "../sensor-data/node-ref.ts";
import { readTokens, type Tokens, writeTokens } from "../sensor-data/tokens.ts";
import {
  type ControlParameter,
  isParameterType,
  NS_CONTROL,
  paramError,
  parameterValueProblem,
} from "./parameters.ts";

export interface ControlSet {
  /** [] = the device itself. */
  readonly nodes: readonly NodeRef[];
  /** In document order: the device applies them in this order. */
  readonly parameters: readonly ControlParameter[];
  /** A submitted control form (type submit). */
  readonly form?: DataForm;
  readonly tokens: Tokens;
}

export const SET_LIMITS = { parameters: 256, nameLength: 1024, valueLength: 16384 } as const;

const bad = (text: string) => new StanzaError("bad-request", text);

function expect(el: Element, name: string): void {
  if (el.getName() !== name || el.getNS() !== NS_CONTROL)
    throw bad(`expected <${name} xmlns='${NS_CONTROL}'/>`);
}

/** Reads a `<set/>`; a bad value is a bad-request carrying a paramError naming the parameter. */
export function decodeSetRequest(set: Element): ControlSet {
  expect(set, "set");
  const nodes = readNodeRefs(set);
  const parameters: ControlParameter[] = [];
  let form: DataForm | undefined;
  for (const child of set.getChildElements()) {
    const type = child.getName();
    if (type === "x" && child.getNS() === NS_DATA) {
      if (form) throw bad("more than one form in a set");
      form = parseForm(child);
      // XEP-0325 §3.3: a control form comes back submitted.
      if (form.type !== "submit") throw bad(`the control form must be of type submit, not ${form.type}`);
      continue;
    }
    if (type === "node" || !isParameterType(type)) continue;
    const name = child.attrs.name;
    if (typeof name !== "string" || name === "") throw bad(`a <${type}/> parameter has no name`);
    if (name.length > SET_LIMITS.nameLength) throw bad("a parameter name is too long");
    if (parameters.length >= SET_LIMITS.parameters)
      throw bad(`more than ${SET_LIMITS.parameters} parameters`);
    const value = child.attrs.value;
    if (typeof value !== "string") throw paramError("bad-request", name, "the parameter has no value");
    if (value.length > SET_LIMITS.valueLength) throw paramError("bad-request", name, "the value is too long");
    const problem = parameterValueProblem(type, value);
    if (problem) throw paramError("bad-request", name, problem);
    parameters.push({ name, type, value });
  }
  return { nodes, parameters, ...(form && { form }), tokens: readTokens(set) };
}

export function encodeSetRequest(s: ControlSet): Element {
  const set = new Element("set", { xmlns: NS_CONTROL });
  writeTokens(set, s.tokens);
  for (const node of s.nodes) writeNodeRef(set, node);
  for (const p of s.parameters) set.c(p.type, { name: p.name, value: p.value });
  if (s.form) set.cnode(formToXml(s.form));
  return set;
}

/** Empty when everything was applied as asked; otherwise what was actually used (§3.1). */
export function encodeSetResponse(narrowed?: {
  nodes: readonly NodeRef[];
  parameterNames: readonly string[];
}): Element {
  const el = new Element("setResponse", { xmlns: NS_CONTROL });
  for (const node of narrowed?.nodes ?? []) writeNodeRef(el, node);
  for (const name of narrowed?.parameterNames ?? []) el.c("parameter", { name });
  return el;
}

export function decodeSetResponse(el: Element): { nodes: NodeRef[]; parameterNames: string[] } {
  expect(el, "setResponse");
  const nodes: NodeRef[] = [];
  const parameterNames: string[] = [];
  for (const child of el.getChildElements()) {
    if (child.getName() === "node") {
      if (nodes.length < SET_LIMITS.parameters) nodes.push(readNodeRef(child));
    } else if (child.getName() === "parameter" && typeof child.attrs.name === "string") {
      if (parameterNames.length < SET_LIMITS.parameters) parameterNames.push(child.attrs.name);
    }
  }
  return { nodes, parameterNames };
}

/** XEP-0325 §3.3: ask for the control form (of the device, or common to the nodes). */
export function encodeGetForm(nodes: readonly NodeRef[], tokens?: Tokens): Element {
  const el = new Element("getForm", { xmlns: NS_CONTROL });
  if (tokens) writeTokens(el, tokens);
  for (const node of nodes) writeNodeRef(el, node);
  return el;
}

export function decodeGetForm(el: Element): { nodes: NodeRef[]; tokens: Tokens } {
  expect(el, "getForm");
  return { nodes: readNodeRefs(el), tokens: readTokens(el) };
}
