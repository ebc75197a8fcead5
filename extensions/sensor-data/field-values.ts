/**
 * The typed value elements of a read-out: what each holds, how it is checked on the way in and
 * on the way out.
 * References: XEP-0323 §3.2 (field value types), schema complexTypes numeric (xs:double value,
 * unit required), string, boolean, date, dateTime, duration, enum (dataType required), int
 * (xs:int), long (xs:long), time; digest §2.2 (keep the number of decimals of a numeric).
 */
import type { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import {
  decimalsOf,
  formatXsDouble,
  parseXsBoolean,
  parseXsDouble,
  parseXsInteger,
  VALUE_TYPE_CHECKS,
  type ValueType,
} from "../data-forms/xs-types.ts";

/** The value types checked by their lexical form alone (VALUE_TYPE_CHECKS). */
export type LexicalValueType = Extract<ValueType, "string" | "date" | "dateTime" | "duration" | "time">;

export type FieldValue =
  /** `decimals` is how many digits follow the point on the wire (21.50 has 2): precision matters. */
  | { readonly type: "numeric"; readonly value: number; readonly decimals: number; readonly unit: string }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "enum"; readonly value: string; readonly dataType: string }
  /** Lexical form, validated against the xs: type of the same name. */
  | { readonly type: LexicalValueType; readonly value: string }
  /** Range-checked: int is 32-bit, long 64-bit. */
  | { readonly type: "int" | "long"; readonly value: bigint };

export type FieldValueType = FieldValue["type"];

export const FIELD_VALUE_TYPES: readonly FieldValueType[] = [
  "numeric",
  "boolean",
  "enum",
  "string",
  "date",
  "dateTime",
  "duration",
  "time",
  "int",
  "long",
];

/** Most decimals we write or keep; more than a double can carry is noise. */
export const MAX_DECIMALS = 20;

export function isFieldValueType(name: string): name is FieldValueType {
  return (FIELD_VALUE_TYPES as readonly string[]).includes(name);
}

/** The problem with a value, or undefined when it can be sent as it is. */
export function fieldValueProblem(v: FieldValue): string | undefined {
  switch (v.type) {
    case "numeric":
      if (!Number.isInteger(v.decimals) || v.decimals < 0 || v.decimals > MAX_DECIMALS) {
        return `decimals must be an integer from 0 to ${MAX_DECIMALS}`;
      }
      return undefined;
    case "boolean":
      return undefined;
    case "enum":
      return v.dataType === "" ? "an enum needs a dataType" : undefined;
    case "int":
    case "long":
      return parseXsInteger(String(v.value), v.type) === undefined
        ? `${v.value} is out of ${v.type} range`
        : undefined;
    default:
      return VALUE_TYPE_CHECKS[v.type](v.value) ? undefined : `'${v.value}' is not an xs:${v.type}`;
  }
}

/** The `value` attribute (and numeric's `unit`, enum's `dataType`) for the element. */
export function fieldValueAttrs(v: FieldValue): Record<string, string> {
  const problem = fieldValueProblem(v);
  if (problem) throw new RangeError(`cannot encode a ${v.type} field: ${problem}`);
  switch (v.type) {
    case "numeric":
      return { value: formatXsDouble(v.value, v.decimals), unit: v.unit };
    case "boolean":
      return { value: v.value ? "true" : "false" };
    case "enum":
      return { value: v.value, dataType: v.dataType };
    case "int":
    case "long":
      return { value: v.value.toString() };
    default:
      return { value: v.value };
  }
}

/** Reads the value of a field element whose local name is its type. */
export function readFieldValue(el: Element): FieldValue {
  const type = el.getName();
  if (!isFieldValueType(type)) throw new StanzaError("bad-request", `<${type}/> is not a field value type`);
  const raw = el.attrs.value;
  const name = String(el.attrs.name ?? "");
  const bad = (why: string) => new StanzaError("bad-request", `field '${name}': ${why}`);
  if (raw === undefined) throw bad("no value"); // schema: value is required on every type
  const lexical = String(raw);
  switch (type) {
    case "numeric": {
      const value = parseXsDouble(lexical);
      if (value === undefined) throw bad(`'${lexical}' is not an xs:double`);
      // COMPAT: the schema requires unit, but devices leave it out for unit-less values.
      return {
        type,
        value,
        decimals: Math.min(decimalsOf(lexical), MAX_DECIMALS),
        unit: String(el.attrs.unit ?? ""),
      };
    }
    case "boolean": {
      const value = parseXsBoolean(lexical);
      if (value === undefined) throw bad(`'${lexical}' is not an xs:boolean`);
      return { type, value };
    }
    case "enum": {
      const dataType = el.attrs.dataType;
      if (dataType === undefined || dataType === "") throw bad("an enum has no dataType"); // schema: required
      return { type, value: lexical, dataType: String(dataType) };
    }
    case "int":
    case "long": {
      const value = parseXsInteger(lexical, type);
      if (value === undefined) throw bad(`'${lexical}' is not an xs:${type}`);
      return { type, value };
    }
    default:
      if (!VALUE_TYPE_CHECKS[type](lexical)) throw bad(`'${lexical}' is not an xs:${type}`);
      return { type, value: lexical };
  }
}
