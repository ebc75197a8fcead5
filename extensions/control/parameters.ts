/**
 * Control parameters: their types, how a value is checked, and the paramError that names a bad
 * one.
 * References: XEP-0325 §3.2 (typed parameters boolean, color, date, dateTime, double, duration,
 * int, long, string, time; each with name and value), §3.1.3 and §3.5.5 (paramError var inside
 * the iq error), schema; RFC 6120 §8.3.2 (application-specific error condition element).
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { VALUE_TYPE_CHECKS, VALUE_TYPES, type ValueType } from "../data-forms/xs-types.ts";

export const NS_CONTROL = "urn:xmpp:iot:control";

/** XEP-0325 §3.2: boolean, color, date, dateTime, double, duration, int, long, string, time. */
export type ParameterType = ValueType;

export const PARAMETER_TYPES: readonly ParameterType[] = VALUE_TYPES;

/** `value` is lexical; decodeSetRequest has checked it against `type`. */
export interface ControlParameter {
  readonly name: string;
  readonly type: ParameterType;
  readonly value: string;
}

export function isParameterType(name: string): name is ParameterType {
  return (PARAMETER_TYPES as readonly string[]).includes(name);
}

/** Why a lexical value is not of the type, or undefined when it is. */
export function parameterValueProblem(type: ParameterType, value: string): string | undefined {
  if (VALUE_TYPE_CHECKS[type](value)) return undefined;
  if (type === "color") return `'${value}' is not a color (RRGGBB or RRGGBBAA)`;
  if (type === "int" || type === "long")
    return `'${value}' is not a ${type === "int" ? "32" : "64"}-bit integer`;
  return `'${value}' is not a valid ${type}`;
}

/** XEP-0325 §3.1.3: `<paramError xmlns='urn:xmpp:iot:control' var='name'>text</paramError>` in <error/>. */
export function paramError(
  condition: "bad-request" | "item-not-found" | "forbidden",
  name: string,
  text: string,
): StanzaError {
  const appElement = new Element("paramError", { xmlns: NS_CONTROL, var: name }).t(text);
  return new StanzaError(condition, text, { appElement });
}

/** The paramError in an `<error/>` element of an error iq, if there is one. */
export function readParamError(error: Element): { name: string; text: string } | undefined {
  const el = error.getChild("paramError", NS_CONTROL);
  if (!el) return undefined;
  return { name: String(el.attrs.var ?? ""), text: el.text() };
}
