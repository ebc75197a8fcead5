/**
 * Form-field extensions the IoT XEPs lean on: XEP-0122 validation (datatype and range), XEP-0336
 * dynamic-form markers (notSame, readOnly) and XEP-0141 layout pages.
 * References: XEP-0122 §3.1 (validate, datatype default xs:string), §3.2 (basic, open, range,
 * regex, list-range), §5 (datatypes); XEP-0336 §3.1 (notSame), §3.2 (readOnly), namespace
 * urn:xmpp:xdata:dynamic; XEP-0141 §3 (page, fieldref); XEP-0331 (xdc:Color datatype).
 */
import { Element } from "ltx";
import type { FormField } from "./form.ts";
import {
  isColor,
  isXsDate,
  isXsDateTime,
  isXsDuration,
  isXsTime,
  parseXsBoolean,
  parseXsDateTime,
  parseXsDouble,
  parseXsInteger,
} from "./xs-types.ts";

export const NS_XDATA_VALIDATE = "http://jabber.org/protocol/xdata-validate";
export const NS_XDATA_DYNAMIC = "urn:xmpp:xdata:dynamic";
export const NS_XDATA_LAYOUT = "http://jabber.org/protocol/xdata-layout";

export interface FieldValidation {
  readonly datatype: string;
  readonly min?: string;
  readonly max?: string;
  readonly regex?: string;
}

/** XEP-0122 §3.1–§3.2: `<validate datatype><range min max/></validate>` (or `<basic/>`). */
export function validateElement(v: FieldValidation): Element {
  const el = new Element("validate", { xmlns: NS_XDATA_VALIDATE, datatype: v.datatype });
  if (v.min !== undefined || v.max !== undefined) {
    const range: Record<string, string> = {};
    if (v.min !== undefined) range.min = v.min;
    if (v.max !== undefined) range.max = v.max;
    el.c("range", range);
  } else {
    el.c("basic");
  }
  if (v.regex !== undefined) el.c("regex").t(v.regex);
  return el;
}

/** The field's XEP-0122 validation, if it has one. */
export function readValidation(field: FormField): FieldValidation | undefined {
  const el = field.extra?.find((e) => e.getName() === "validate" && e.getNS() === NS_XDATA_VALIDATE);
  if (!el) return undefined;
  const range = el.getChild("range");
  const regex = el.getChild("regex");
  return {
    datatype: el.attrs.datatype ?? "xs:string", // XEP-0122 §3.1
    ...(range?.attrs.min !== undefined && { min: String(range.attrs.min) }),
    ...(range?.attrs.max !== undefined && { max: String(range.attrs.max) }),
    ...(regex && { regex: regex.text() }),
  };
}

/** XEP-0336 markers: `<notSame xmlns='urn:xmpp:xdata:dynamic'/>`, `<readOnly .../>`. */
export function dynamicMarker(name: "notSame" | "readOnly"): Element {
  return new Element(name, { xmlns: NS_XDATA_DYNAMIC });
}

export function hasDynamicMarker(field: FormField, name: "notSame" | "readOnly"): boolean {
  return field.extra?.some((e) => e.getName() === name && e.getNS() === NS_XDATA_DYNAMIC) ?? false;
}

/** XEP-0141 §3: a page holding references to the named fields. */
export function layoutPage(label: string, fieldVars: readonly string[]): Element {
  const page = new Element("page", { xmlns: NS_XDATA_LAYOUT, label });
  for (const name of fieldVars) page.c("fieldref", { var: name });
  return page;
}

type Comparable = number | bigint;

/** Parses a value of a datatype to something ordered, or undefined if it is not of that type. */
function typedValue(datatype: string, value: string): Comparable | string | boolean | undefined {
  switch (datatype) {
    case "xs:boolean":
      return parseXsBoolean(value);
    case "xs:int":
    case "xs:long":
      return parseXsInteger(value, datatype === "xs:int" ? "int" : "long");
    case "xs:integer":
      return /^[+-]?\d{1,40}$/.test(value.trim()) ? BigInt(value.trim()) : undefined;
    case "xs:byte":
    case "xs:short": {
      const n = parseXsInteger(value, "int");
      const limit = datatype === "xs:byte" ? 128n : 32768n;
      return n !== undefined && n >= -limit && n < limit ? n : undefined;
    }
    case "xs:double":
    case "xs:float":
      return parseXsDouble(value);
    case "xs:decimal":
      return /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(value.trim()) ? Number(value) : undefined;
    case "xs:date":
      return isXsDate(value) ? value : undefined;
    case "xs:time":
      return isXsTime(value) ? value : undefined;
    case "xs:duration":
      return isXsDuration(value) ? value : undefined;
    case "xs:dateTime":
      return isXsDateTime(value) ? (parseXsDateTime(value)?.getTime() ?? value) : undefined;
    case "xdc:Color":
      return isColor(value) ? value : undefined;
    default:
      return value; // xs:string and anything we do not know: accepted as text
  }
}

/** Checks one value against a field's XEP-0122 rules. Returns the problem, or undefined. */
export function checkFieldValue(validation: FieldValidation, value: string): string | undefined {
  const typed = typedValue(validation.datatype, value);
  if (typed === undefined) return `'${value}' is not a valid ${validation.datatype}`;
  // The regex method (XEP-0122 §3.2.4) is not evaluated: a pattern from another party could make
  // matching take exponential time.
  if (typeof typed !== "number" && typeof typed !== "bigint") return undefined;
  // XEP-0122 §3.2.3: range bounds are inclusive, in the field's datatype.
  const below = validation.min !== undefined ? typedValue(validation.datatype, validation.min) : undefined;
  const above = validation.max !== undefined ? typedValue(validation.datatype, validation.max) : undefined;
  if (typeof below === typeof typed && (below as Comparable) > typed)
    return `${value} is below ${validation.min}`;
  if (typeof above === typeof typed && (above as Comparable) < typed)
    return `${value} is above ${validation.max}`;
  return undefined;
}
