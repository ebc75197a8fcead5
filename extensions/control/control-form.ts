/**
 * The control form a device hands out (getForm) and reading a submitted one back into typed
 * parameters.
 * References: XEP-0325 §3.3 (control form: every field xdd:notSame, XEP-0122 validation with
 * datatype and range, a hidden 'xdd session' field, XEP-0141 pages, parameterGroup; a submitted
 * form holds only the edited fields and the device acts only on those); XEP-0336 §3.1
 * (notSame); XEP-0122 §3 (validate); XEP-0141 §3 (page); XEP-0331 (xdc:Color).
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import type { DataForm, FormField } from "../data-forms/form.ts";
import { checkFieldValue, dynamicMarker, layoutPage, validateElement } from "../data-forms/validation.ts";
import { parseXsBoolean } from "../data-forms/xs-types.ts";
import {
  type ControlParameter,
  NS_CONTROL,
  type ParameterType,
  paramError,
  parameterValueProblem,
} from "./parameters.ts";

export interface ParameterSpec {
  readonly name: string;
  readonly type: ParameterType;
  readonly label: string;
  /** Current value, lexical. */
  readonly value: string;
  readonly min?: string;
  readonly max?: string;
  /** XEP-0325 parameterGroup: parameters that must be written together. */
  readonly group?: string;
  /** Allowed values (a list-single field). */
  readonly options?: readonly string[];
}

/** The hidden field naming the form session (XEP-0336 §3.4 'xdd session'). */
export const SESSION_FIELD = "xdd session";

/** The XEP-0122 datatype of a parameter type. */
export function parameterDatatype(type: ParameterType): string {
  return type === "color" ? "xdc:Color" : `xs:${type}`;
}

function fieldFor(spec: ParameterSpec): FormField {
  const extra: Element[] = [
    validateElement({
      datatype: parameterDatatype(spec.type),
      ...(spec.min !== undefined && { min: spec.min }),
      ...(spec.max !== undefined && { max: spec.max }),
    }),
    dynamicMarker("notSame"), // XEP-0325 §3.3: an untouched submit then changes nothing
  ];
  if (spec.group !== undefined)
    extra.push(new Element("parameterGroup", { xmlns: NS_CONTROL, name: spec.group }));
  return {
    var: spec.name,
    type: spec.type === "boolean" ? "boolean" : spec.options ? "list-single" : "text-single",
    label: spec.label,
    values: [spec.value],
    ...(spec.options && { options: spec.options.map((value) => ({ value })) }),
    extra,
  };
}

/** The control form for these parameters, in the order the device applies them. */
export function controlForm(params: readonly ParameterSpec[], session: string): DataForm {
  const groups = new Map<string, string[]>();
  for (const p of params) {
    const page = p.group ?? "";
    groups.set(page, [...(groups.get(page) ?? []), p.name]);
  }
  // XEP-0141: one page per parameter group, the ungrouped parameters on a "Control" page.
  const pages = [...groups].map(([group, names]) => layoutPage(group === "" ? "Control" : group, names));
  return {
    type: "form",
    title: "Control",
    fields: [{ var: SESSION_FIELD, type: "hidden", values: [session] }, ...params.map(fieldFor)],
    extra: pages,
  };
}

/** Type, range and options of one value; the problem text, or undefined. */
export function checkParameter(spec: ParameterSpec, value: string): string | undefined {
  const problem = parameterValueProblem(spec.type, value);
  if (problem) return problem;
  const range = checkFieldValue(
    {
      datatype: parameterDatatype(spec.type),
      ...(spec.min !== undefined && { min: spec.min }),
      ...(spec.max !== undefined && { max: spec.max }),
    },
    value,
  );
  if (range) return range;
  if (spec.options && !spec.options.includes(value)) return `'${value}' is not one of the allowed values`;
  return undefined;
}

/**
 * The parameters a submitted control form sets, in the device's order (the specs' order), only
 * those submitted (§3.3). Unknown fields are item-not-found, bad values bad-request; both carry
 * a paramError naming the field.
 */
export function parametersFromForm(form: DataForm, specs: readonly ParameterSpec[]): ControlParameter[] {
  if (form.type !== "submit") throw new StanzaError("bad-request", "the control form must be of type submit");
  const submitted = new Map<string, string>();
  for (const field of form.fields) {
    if (field.var === undefined || field.var === SESSION_FIELD) continue;
    if (!specs.some((s) => s.name === field.var))
      throw paramError("item-not-found", field.var, "no such parameter");
    const value = field.values[0];
    if (value === undefined) throw paramError("bad-request", field.var, "the field has no value");
    submitted.set(field.var, value);
  }
  const parameters: ControlParameter[] = [];
  for (const spec of specs) {
    const raw = submitted.get(spec.name);
    if (raw === undefined) continue;
    const problem = checkParameter(spec, raw);
    if (problem) throw paramError("bad-request", spec.name, problem);
    // XEP-0004 boolean fields may say 1/0; typed parameters are clearer as true/false.
    const value = spec.type === "boolean" ? String(parseXsBoolean(raw)) : raw;
    parameters.push({ name: spec.name, type: spec.type, value });
  }
  return parameters;
}
