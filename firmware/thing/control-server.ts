/**
 * The device side of XEP-0325: a typed `set` (iq: answered with setResponse, narrowed when
 * provisioning allowed less; message: no answer), a submitted control form, and getForm.
 * Everything is checked for every addressed node before anything is applied (all or nothing).
 * References: XEP-0325 §3.1 (set in a message: no response), §3.2 (set in an iq; setResponse),
 * §3.3 (paramError for a bad or unknown parameter), §3.4–§3.5 (getForm; submitting the form:
 * only the fields sent are applied), §3.6 (several nodes: validate on all before acting),
 * §3.7 (parameters applied in document order); XEP-0324 §3.4 (canControl narrowing; the narrowed
 * set is echoed in setResponse).
 */
import { randomBytes } from "node:crypto";
import type { Element } from "ltx";
import {
  type ControlParameter,
  controlForm,
  decodeSetRequest,
  encodeSetResponse,
  NS_CONTROL,
  type ParameterSpec,
  paramError,
  parametersFromForm,
} from "../../extensions/control/index.ts";
import { formToXml } from "../../extensions/data-forms/form.ts";
import { type NodeRef, readNodeRefs, readTokens } from "../../extensions/sensor-data/index.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import type { Log } from "../xmpp/connection.ts";
import type { IqHandler } from "../xmpp/iq.ts";
import { type AccessDecider, allowedNodes, requireAllowed } from "./decisions.ts";
import { bareJid, senderOf } from "./sender.ts";

/** What the application offers to control. */
export interface ControlHandler {
  /** The parameters of the thing (node undefined) or of one node, with their current values. */
  parameters(node?: NodeRef): readonly ParameterSpec[];
  /** Applies checked parameters, in document order (XEP-0325 §3.7). */
  apply(parameters: readonly ControlParameter[], node?: NodeRef): void | Promise<void>;
}

export interface ControlServerDeps {
  readonly decider: AccessDecider;
  readonly handler: ControlHandler;
  onIq(type: "get" | "set", ns: string, name: string, handler: IqHandler): void;
  nodeExists?(node: NodeRef): boolean;
  /** Told after parameters were applied (the simulator prints, tests wait). */
  applied?(caller: string, parameters: readonly ControlParameter[], node?: NodeRef): void;
  readonly log?: Log;
}

const NUMERIC = new Set(["int", "long", "double"]);

/** Whether a parameter of type `given` may set a spec of type `wanted` (int into double is fine). */
function compatible(wanted: string, given: string): boolean {
  if (wanted === given) return true;
  if (wanted === "double") return given === "int" || given === "long";
  if (wanted === "long") return given === "int";
  return false;
}

/** XEP-0325 §3.3: unknown parameter, wrong type, out of range or not an option: paramError. */
function check(param: ControlParameter, specs: readonly ParameterSpec[], where: string): void {
  const spec = specs.find((s) => s.name === param.name);
  if (!spec) throw paramError("item-not-found", param.name, `no parameter ${param.name}${where}`);
  if (!compatible(spec.type, param.type)) {
    throw paramError("bad-request", param.name, `${param.name} is a ${spec.type}, not a ${param.type}`);
  }
  if (NUMERIC.has(spec.type)) {
    const v = Number(param.value);
    if (spec.min !== undefined && v < Number(spec.min)) {
      throw paramError("bad-request", param.name, `${param.name} must be at least ${spec.min}`);
    }
    if (spec.max !== undefined && v > Number(spec.max)) {
      throw paramError("bad-request", param.name, `${param.name} must be at most ${spec.max}`);
    }
  }
  if (spec.options && spec.options.length > 0 && !spec.options.includes(param.value)) {
    throw paramError("bad-request", param.name, `${param.name} must be one of ${spec.options.join(", ")}`);
  }
}

/** Parameters common to every node, taken from the first (multi-node forms: XEP-0325 §3.4). */
function commonSpecs(handler: ControlHandler, targets: readonly (NodeRef | undefined)[]): ParameterSpec[] {
  const [first, ...rest] = targets.map((t) => handler.parameters(t));
  return (first ?? []).filter((spec) =>
    rest.every((specs) => specs.some((s) => s.name === spec.name && s.type === spec.type)),
  );
}

export function startControlServer(deps: ControlServerDeps): {
  /** Runs a set (iq or message) from `from`; returns the setResponse. */
  handleSet(from: string, set: Element): Promise<Element>;
} {
  const { handler, decider } = deps;

  function checkNodes(nodes: readonly NodeRef[]): void {
    if (!deps.nodeExists) {
      if (nodes.length > 0) throw new StanzaError("item-not-found", "this thing has no nodes");
      return;
    }
    const unknown = nodes.find((n) => !deps.nodeExists!(n));
    if (unknown) throw new StanzaError("item-not-found", `no node ${unknown.nodeId}`);
  }

  async function handleSet(from: string, setEl: Element): Promise<Element> {
    const caller = bareJid(from);
    const set = decodeSetRequest(setEl); // bad-request (with paramError) for malformed values
    checkNodes(set.nodes);
    let targets: (NodeRef | undefined)[] = set.nodes.length > 0 ? [...set.nodes] : [undefined];
    // §3.5: a submitted form sets only the fields it carries.
    const requested = set.form
      ? parametersFromForm(set.form, commonSpecs(handler, targets))
      : [...set.parameters];
    if (requested.length === 0) throw new StanzaError("bad-request", "no parameters to set");

    const access = await decider.canControl(caller, {
      nodes: set.nodes,
      parameterNames: [...new Set(requested.map((p) => p.name))],
      tokens: set.tokens,
    });
    requireAllowed(access, "control");
    let narrowed = false;
    if (set.nodes.length > 0) {
      const allowed = allowedNodes(set.nodes, access.nodes, "control");
      narrowed ||= allowed.length < targets.length;
      targets = [...allowed];
    } else if (access.nodes.length > 0) {
      // The whole device was asked for but only some nodes are allowed: act on those alone,
      // never on the whole device (XEP-0324 §3.4: the answer narrows the request).
      checkNodes(access.nodes);
      targets = [...access.nodes];
      narrowed = true;
    }
    let parameters = requested;
    if (access.parameterNames.length > 0) {
      // XEP-0324 §3.4: only the permitted parameters are applied, and the caller is told which.
      parameters = requested.filter((p) => access.parameterNames.includes(p.name));
      if (parameters.length === 0) {
        const denied = requested[0]!.name;
        throw paramError("forbidden", denied, `not allowed to set ${denied}`);
      }
      narrowed ||= parameters.length < requested.length;
    }
    // §3.6: validate on every node before acting on any.
    for (const target of targets) {
      const specs = handler.parameters(target);
      const where = target ? ` on node ${target.nodeId}` : "";
      for (const p of parameters) check(p, specs, where);
    }
    for (const target of targets) {
      await handler.apply(parameters, target);
      deps.applied?.(caller, parameters, target);
    }
    return narrowed
      ? encodeSetResponse({
          nodes: targets.filter((t): t is NodeRef => t !== undefined),
          parameterNames: parameters.map((p) => p.name),
        })
      : encodeSetResponse();
  }

  deps.onIq("set", NS_CONTROL, "set", (iq) =>
    handleSet(iq.attrs.from ?? "", iq.getChild("set", NS_CONTROL)!),
  );

  // §3.4: the control form, for the nodes asked about (parameters common to all of them).
  deps.onIq("get", NS_CONTROL, "getForm", async (iq) => {
    const getForm = iq.getChild("getForm", NS_CONTROL)!;
    const nodes = readNodeRefs(getForm);
    checkNodes(nodes);
    const access = await decider.canControl(senderOf(iq), {
      nodes,
      parameterNames: [],
      tokens: readTokens(getForm),
    });
    requireAllowed(access, "control");
    const targets = nodes.length > 0 ? nodes : [undefined];
    let specs = commonSpecs(handler, targets);
    if (access.parameterNames.length > 0) specs = specs.filter((s) => access.parameterNames.includes(s.name));
    return formToXml(controlForm(specs, randomBytes(8).toString("hex")));
  });

  return { handleSet };
}

/** §3.1: a set in a message gets no answer; problems are only logged. */
export function controlMessageListener(
  server: { handleSet(from: string, set: Element): Promise<Element> },
  log?: ControlServerDeps["log"],
): (message: Element) => void {
  return (message) => {
    const set = message.getChild("set", NS_CONTROL);
    if (!set || message.attrs.type === "error") return;
    server.handleSet(message.attrs.from ?? "", set).catch((err: Error) => {
      log?.("info", "control message refused", { from: message.attrs.from, error: err.message });
    });
  };
}
