/**
 * XEP-0004 data forms as plain values: read strictly (bad input is a bad-request naming the
 * problem), written with the hidden FORM_TYPE first. Extension children of a field (XEP-0122
 * validate, XEP-0336 notSame/readOnly, XEP-0325 parameterGroup, ...) and of the form (XEP-0141
 * pages and sections) are kept as opaque elements.
 * References: XEP-0004 §3.1 (form types, title, instructions), §3.2 (field element: var, type,
 * label, desc, required, value, option), §3.3 (field types; boolean lexical forms), §3.4
 * (multiple items in a result: reported and item); XEP-0068 §3 (FORM_TYPE hidden field).
 */
import { clone, Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { parseXsBoolean } from "./xs-types.ts";

export const NS_DATA = "jabber:x:data";

export type FieldType =
  | "boolean"
  | "fixed"
  | "hidden"
  | "jid-multi"
  | "jid-single"
  | "list-multi"
  | "list-single"
  | "text-multi"
  | "text-private"
  | "text-single";

const FIELD_TYPES: ReadonlySet<string> = new Set<FieldType>([
  "boolean",
  "fixed",
  "hidden",
  "jid-multi",
  "jid-single",
  "list-multi",
  "list-single",
  "text-multi",
  "text-private",
  "text-single",
]);

/** XEP-0004 §3.3: these carry at most one value. */
const SINGLE_VALUED: ReadonlySet<string> = new Set([
  "boolean",
  "jid-single",
  "list-single",
  "text-private",
  "text-single",
]);

const FORM_TYPES = ["form", "submit", "cancel", "result"] as const;

export interface FormOption {
  readonly label?: string;
  readonly value: string;
}

export interface FormField {
  readonly var?: string;
  readonly type?: FieldType;
  readonly label?: string;
  readonly desc?: string;
  readonly required?: boolean;
  readonly values: readonly string[];
  readonly options?: readonly FormOption[];
  /** Extension children kept as-is (xdv:validate, xdd:notSame, parameterGroup, ...). */
  readonly extra?: readonly Element[];
}

export interface DataForm {
  readonly type: "form" | "submit" | "cancel" | "result";
  /** The hidden FORM_TYPE field's value (XEP-0068). */
  readonly formType?: string;
  readonly title?: string;
  readonly instructions?: readonly string[];
  /** Every field except FORM_TYPE, in document order. */
  readonly fields: readonly FormField[];
  /** Form-level extension children kept as-is (XEP-0141 page/section, ...). */
  readonly extra?: readonly Element[];
  /** XEP-0004 §3.4: the column headings of a multi-item result (a table). */
  readonly reported?: readonly FormField[];
  /** XEP-0004 §3.4: the rows of a multi-item result; each row's fields name a reported column. */
  readonly items?: readonly (readonly FormField[])[];
}

/** What one form may hold; a form is read from a stanza any outsider can send. */
export const FORM_LIMITS = {
  fields: 256,
  valuesPerField: 256,
  valuesPerForm: 4096,
  optionsPerField: 256,
  extraPerField: 16,
  extraPerForm: 64,
  instructions: 16,
  /** Rows of a multi-item result (XEP-0004 §3.4). */
  items: 1024,
  /** Characters in one value, label, title, desc, var or instructions line. */
  textLength: 16384,
} as const;

const bad = (text: string) => new StanzaError("bad-request", text);

function checkLength(what: string, text: string): string {
  if (text.length > FORM_LIMITS.textLength)
    throw bad(`${what} is longer than ${FORM_LIMITS.textLength} characters`);
  return text;
}

function optionalText(what: string, v: unknown): string | undefined {
  return typeof v === "string" ? checkLength(what, v) : undefined;
}

/**
 * A copy of an element that no longer depends on prefixes declared by its ancestors: local names
 * with explicit xmlns all the way down, so a kept extension (`<xdd:notSame/>` under an `<x>`
 * declaring `xmlns:xdd`) can be inspected by name and written out again on its own.
 */
export function standalone(el: Element, inheritedNs?: string): Element {
  const attrs: Record<string, string> = {};
  for (const [name, value] of Object.entries(el.attrs)) {
    if (name !== "xmlns" && !name.startsWith("xmlns:")) attrs[name] = String(value);
  }
  const ns = el.getNS();
  if (ns !== undefined && ns !== inheritedNs) attrs.xmlns = ns;
  const copy = new Element(el.getName(), attrs);
  for (const child of el.children) copy.cnode(typeof child === "string" ? child : standalone(child, ns));
  return copy;
}

/** XEP-0004 §3.3: "1"/"true" and "0"/"false". */
export function parseBoolean(v: string): boolean | undefined {
  return parseXsBoolean(v);
}

/** Reads a `<x xmlns='jabber:x:data'/>`. Throws bad-request on anything malformed or too big. */
export function parseForm(x: Element): DataForm {
  if (x.getName() !== "x" || x.getNS() !== NS_DATA) throw bad(`expected <x xmlns='${NS_DATA}'/>`);
  const type = x.attrs.type;
  // XEP-0004 §3.1: the type attribute is required and one of four.
  if (!FORM_TYPES.includes(type))
    throw bad(`form type '${String(type ?? "")}' is not form, submit, cancel or result`);

  let title: string | undefined;
  const instructions: string[] = [];
  const fields: FormField[] = [];
  const extra: Element[] = [];
  let formType: string | undefined;
  const seen = new Set<string>();
  let totalValues = 0;
  let reported: FormField[] | undefined;
  const items: FormField[][] = [];
  const countValues = (field: FormField) => {
    totalValues += field.values.length;
    if (totalValues > FORM_LIMITS.valuesPerForm)
      throw bad(`more than ${FORM_LIMITS.valuesPerForm} values in the form`);
  };

  for (const child of x.getChildElements()) {
    const inDataNs = child.getNS() === NS_DATA;
    if (inDataNs && child.getName() === "title") {
      title = checkLength("the form title", child.text());
    } else if (inDataNs && child.getName() === "instructions") {
      if (instructions.length >= FORM_LIMITS.instructions) throw bad("too many instructions");
      instructions.push(checkLength("instructions", child.text()));
    } else if (inDataNs && child.getName() === "field") {
      const field = parseField(child);
      countValues(field);
      if (field.var !== undefined) {
        if (seen.has(field.var)) throw bad(`field '${field.var}' appears twice`);
        seen.add(field.var);
      }
      // XEP-0068 §3: FORM_TYPE is hidden; submitted forms often leave the type out.
      if (field.var === "FORM_TYPE" && (field.type === undefined || field.type === "hidden")) {
        formType = field.values[0];
        continue;
      }
      if (fields.length >= FORM_LIMITS.fields) throw bad(`more than ${FORM_LIMITS.fields} fields`);
      fields.push(field);
    } else if (inDataNs && child.getName() === "reported") {
      // XEP-0004 §3.4: one reported element, before any item.
      if (reported !== undefined || items.length > 0)
        throw bad("<reported/> must come once, before the items");
      reported = parseRow(child, countValues);
    } else if (inDataNs && child.getName() === "item") {
      if (reported === undefined) throw bad("an <item/> comes before <reported/>");
      if (items.length >= FORM_LIMITS.items) throw bad(`more than ${FORM_LIMITS.items} items`);
      const row = parseRow(child, countValues);
      const unknown = row.find((f) => !reported?.some((r) => r.var === f.var));
      // XEP-0004 §3.4: every field of an item corresponds to a reported field.
      if (unknown) throw bad(`item field '${unknown.var ?? ""}' is not in <reported/>`);
      items.push(row);
    } else {
      if (extra.length >= FORM_LIMITS.extraPerForm) throw bad("too many extension elements in the form");
      extra.push(standalone(child));
    }
  }

  return {
    type,
    ...(formType !== undefined && { formType }),
    ...(title !== undefined && { title }),
    ...(instructions.length > 0 && { instructions }),
    fields,
    ...(extra.length > 0 && { extra }),
    ...(reported !== undefined && { reported }),
    ...(items.length > 0 && { items }),
  };
}

/** The fields of a reported or item element (each needs a var: it names a column). */
function parseRow(row: Element, countValues: (f: FormField) => void): FormField[] {
  const fields: FormField[] = [];
  const seen = new Set<string>();
  for (const child of row.getChildren("field", NS_DATA)) {
    if (fields.length >= FORM_LIMITS.fields) throw bad(`more than ${FORM_LIMITS.fields} fields in a row`);
    const field = parseField(child);
    if (field.var === undefined) throw bad(`a field in <${row.getName()}/> has no var`);
    if (seen.has(field.var)) throw bad(`field '${field.var}' appears twice in <${row.getName()}/>`);
    seen.add(field.var);
    countValues(field);
    fields.push(field);
  }
  return fields;
}

function parseField(f: Element): FormField {
  const name = optionalText("a field var", f.attrs.var);
  const type = f.attrs.type;
  if (type !== undefined && !FIELD_TYPES.has(type))
    throw bad(`field '${name ?? ""}' has unknown type '${type}'`);
  // XEP-0004 §3.2: var is required unless the field is fixed.
  if (name === undefined && type !== "fixed") throw bad("a field other than fixed has no var");
  const label = optionalText("a field label", f.attrs.label);
  const where = `field '${name ?? label ?? ""}'`;

  let desc: string | undefined;
  let required = false;
  const values: string[] = [];
  const options: FormOption[] = [];
  const extra: Element[] = [];
  for (const child of f.getChildElements()) {
    const inDataNs = child.getNS() === NS_DATA;
    if (inDataNs && child.getName() === "value") {
      if (values.length >= FORM_LIMITS.valuesPerField) throw bad(`${where} has too many values`);
      values.push(checkLength(`a value of ${where}`, child.text()));
    } else if (inDataNs && child.getName() === "desc") {
      desc = checkLength(`the desc of ${where}`, child.text());
    } else if (inDataNs && child.getName() === "required") {
      required = true;
    } else if (inDataNs && child.getName() === "option") {
      if (options.length >= FORM_LIMITS.optionsPerField) throw bad(`${where} has too many options`);
      const value = child.getChild("value");
      if (!value) throw bad(`an option of ${where} has no value`);
      const optionLabel = optionalText(`an option label of ${where}`, child.attrs.label);
      options.push({
        ...(optionLabel !== undefined && { label: optionLabel }),
        value: checkLength(`an option of ${where}`, value.text()),
      });
    } else {
      if (extra.length >= FORM_LIMITS.extraPerField) throw bad(`${where} has too many extension elements`);
      extra.push(standalone(child));
    }
  }
  if (type !== undefined && SINGLE_VALUED.has(type) && values.length > 1) {
    throw bad(`${where} of type ${type} has more than one value`);
  }
  if (type === "boolean" && values.length === 1 && parseBoolean(values[0]!) === undefined) {
    throw bad(`${where} is boolean but its value is '${values[0]}'`); // XEP-0004 §3.3
  }
  return {
    ...(name !== undefined && { var: name }),
    ...(type !== undefined && { type: type as FieldType }),
    ...(label !== undefined && { label }),
    ...(desc !== undefined && { desc }),
    ...(required && { required }),
    values,
    ...(options.length > 0 && { options }),
    ...(extra.length > 0 && { extra }),
  };
}

/** Writes the form; FORM_TYPE goes first as a hidden field (XEP-0068 §3). */
export function formToXml(form: DataForm): Element {
  const x = new Element("x", { xmlns: NS_DATA, type: form.type });
  if (form.title !== undefined) x.c("title").t(form.title);
  for (const line of form.instructions ?? []) x.c("instructions").t(line);
  if (form.formType !== undefined) {
    x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(form.formType);
  }
  for (const extension of form.extra ?? []) x.cnode(clone(extension));
  for (const field of form.fields) writeField(x, field);
  if (form.reported !== undefined) {
    const reported = x.c("reported");
    for (const field of form.reported) writeField(reported, field);
    for (const row of form.items ?? []) {
      const item = x.c("item");
      for (const field of row) writeField(item, field);
    }
  }
  return x;
}

function writeField(parent: Element, field: FormField): void {
  const attrs: Record<string, string> = {};
  if (field.var !== undefined) attrs.var = field.var;
  if (field.type !== undefined) attrs.type = field.type;
  if (field.label !== undefined) attrs.label = field.label;
  const f = parent.c("field", attrs);
  if (field.desc !== undefined) f.c("desc").t(field.desc);
  if (field.required) f.c("required");
  for (const value of field.values) f.c("value").t(value);
  for (const option of field.options ?? []) {
    f.c("option", option.label !== undefined ? { label: option.label } : {})
      .c("value")
      .t(option.value);
  }
  // Cloned so that writing a form twice never moves an element out of the caller's value.
  for (const extension of field.extra ?? []) f.cnode(clone(extension));
}

export function formField(form: DataForm, name: string): FormField | undefined {
  return form.fields.find((f) => f.var === name);
}

/** The first value of a field; "FORM_TYPE" gives the form type. */
export function formValue(form: DataForm, name: string): string | undefined {
  if (name === "FORM_TYPE") return form.formType;
  return formField(form, name)?.values[0];
}

export function formValues(form: DataForm, name: string): readonly string[] {
  if (name === "FORM_TYPE") return form.formType !== undefined ? [form.formType] : [];
  return formField(form, name)?.values ?? [];
}
