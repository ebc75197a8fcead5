/**
 * Owner questions and answers as XEP-0004 forms in our own namespace: the question a provisioning
 * service sends to an owner when no rule covers a request, and the owner's submitted answer, read
 * strictly and turned into a rule. The protocol is documented in
 * docs/protocol/provisioning-questions.md.
 * References: XEP-0004 §3.1 (form/submit/cancel), §3.3 (field types), XEP-0068 §3 (FORM_TYPE),
 * XEP-0324 §3.1–§3.4 (what can be asked: friendship, readout, control).
 */
import { Element } from "ltx";
import {
  type DataForm,
  type FormField,
  formField,
  formToXml,
  formValue,
  formValues,
  NS_DATA,
  parseForm,
} from "../extensions/data-forms/form.ts";
import { FIELD_CATEGORIES, type FieldCategory } from "../extensions/sensor-data/categories.ts";
import type { NodeRef } from "../extensions/sensor-data/node-ref.ts";
import { StanzaError } from "../server/xml/errors.ts";
import { domainOf, type NewRule, nodeKey, nodeLabel, type RuleKind, type Scope } from "./rules.ts";
import type { Question } from "./store.ts";

export const FORM_TYPE_QUESTION = "urn:hanse:iot:provisioning:question:0";

const bad = (text: string) => new StanzaError("bad-request", text);

const VERB: Record<RuleKind, string> = {
  friend: "become friends with",
  read: "read",
  control: "control",
};

function describeRequest(q: Question): string {
  const parts: string[] = [];
  const r = q.request;
  if (r.nodes.length > 0) parts.push(`nodes ${r.nodes.map(nodeLabel).join(", ")}`);
  if (r.fieldNames.length > 0) parts.push(`fields ${r.fieldNames.join(", ")}`);
  if (r.categories.length > 0 && r.categories.length < FIELD_CATEGORIES.length) {
    parts.push(`categories ${r.categories.join(", ")}`);
  }
  if (r.parameterNames.length > 0) parts.push(`parameters ${r.parameterNames.join(", ")}`);
  return parts.length > 0 ? ` (${parts.join("; ")})` : "";
}

/** The one-line question for people whose client shows only the body. */
export function questionText(q: Question): string {
  return `${q.caller} asks to ${VERB[q.kind]} ${q.thing}${describeRequest(q)}. It was refused for now. Answer with the attached form to allow or deny it.`;
}

function listMulti(
  name: string,
  label: string,
  values: readonly { value: string; label: string }[],
): FormField {
  return {
    var: name,
    type: "list-multi",
    label,
    values: values.map((v) => v.value), // default: everything asked
    options: values.map((v) => ({ value: v.value, label: v.label })),
  };
}

/** A required single choice with a default (the decision, its scope and its duration). */
function requiredChoice(
  name: string,
  label: string,
  initial: string,
  options: readonly { value: string; label: string }[],
): FormField {
  return { var: name, type: "list-single", label, required: true, values: [initial], options };
}

/** The form of a question (type "form"): what was asked and the answer fields with defaults. */
export function questionForm(q: Question): DataForm {
  const r = q.request;
  const fields: FormField[] = [
    { var: "key", type: "hidden", values: [q.key] },
    { var: "kind", type: "hidden", values: [q.kind] },
    { var: "thing", type: "jid-single", label: "Thing", values: [q.thing] },
    { var: "caller", type: "jid-single", label: "Asked by", values: [q.caller] },
    requiredChoice("decision", "Decision", "deny", [
      { value: "allow", label: "Allow" },
      { value: "deny", label: "Deny" },
    ]),
    requiredChoice("scope", "For whom", "caller", [
      { value: "caller", label: `Only ${q.caller}` },
      { value: "domain", label: `Anyone at ${domainOf(q.caller)}` },
      { value: "everyone", label: "Everyone" },
    ]),
    requiredChoice("duration", "How long", "always", [
      { value: "always", label: "From now on" },
      { value: "once", label: "This time only" },
    ]),
  ];
  if (r.nodes.length > 0) {
    fields.push(
      listMulti(
        "nodes",
        "Nodes",
        r.nodes.map((n) => ({ value: nodeKey(n), label: nodeLabel(n) })),
      ),
    );
  }
  if (q.kind === "read" && r.fieldNames.length > 0) {
    fields.push(
      listMulti(
        "fields",
        "Fields",
        r.fieldNames.map((f) => ({ value: f, label: f })),
      ),
    );
  }
  if (q.kind === "read" && r.categories.length > 0 && r.categories.length < FIELD_CATEGORIES.length) {
    fields.push(
      listMulti(
        "categories",
        "Kinds of values",
        r.categories.map((c) => ({ value: c, label: c })),
      ),
    );
  }
  if (q.kind === "control" && r.parameterNames.length > 0) {
    fields.push(
      listMulti(
        "parameters",
        "Parameters",
        r.parameterNames.map((p) => ({ value: p, label: p })),
      ),
    );
  }
  return {
    type: "form",
    formType: FORM_TYPE_QUESTION,
    title: `Provisioning: ${q.thing}`,
    instructions: [questionText(q)],
    fields,
  };
}

/** The message carrying a question to the owner's bare JID (online resources or offline storage). */
export function questionMessage(q: Question, from: string): Element {
  const message = new Element("message", { type: "normal", from, to: q.owner, id: `prov-${q.key}` });
  message.c("subject").t(`Provisioning question about ${q.thing}`);
  message.c("body").t(questionText(q));
  message.cnode(formToXml(questionForm(q)));
  return message;
}

/** An owner's answer as read from the submitted form, before it is checked against the question. */
export interface SubmittedAnswer {
  readonly key: string;
  readonly allow: boolean;
  readonly scope: Scope;
  readonly once: boolean;
  /** undefined = the field was not submitted (= all). */
  readonly nodes: readonly string[] | undefined;
  readonly fieldNames: readonly string[] | undefined;
  readonly categories: readonly string[] | undefined;
  readonly parameterNames: readonly string[] | undefined;
}

function oneOf<T extends string>(form: DataForm, name: string, allowed: readonly T[], fallback?: T): T {
  const values = formValues(form, name);
  if (values.length === 0) {
    if (fallback !== undefined) return fallback;
    throw bad(`the answer needs a ${name} (${allowed.join(" or ")})`);
  }
  if (values.length > 1) throw bad(`${name} takes one value`);
  const v = values[0] as T;
  if (!allowed.includes(v)) throw bad(`${name} '${v}' is not ${allowed.join(" or ")}`);
  return v;
}

function selection(form: DataForm, name: string): readonly string[] | undefined {
  if (!formField(form, name)) return undefined;
  const values = formValues(form, name);
  if (values.length === 0)
    throw bad(`no ${name} selected: select at least one, or leave the field out for all`);
  return values;
}

/** Finds the submitted question form inside a stanza payload: the `<x/>` itself or a child. */
export function findAnswerForm(el: Element): Element | undefined {
  if (el.getName() === "x" && el.getNS() === NS_DATA) return el;
  return el.getChildren("x", NS_DATA).find((x) => {
    const t = x.getChildren("field").find((f) => f.attrs.var === "FORM_TYPE");
    return t?.getChildText("value") === FORM_TYPE_QUESTION;
  });
}

/**
 * Reads a submitted answer. `cancel` forms mean "no answer" (undefined). Anything malformed is a
 * bad-request naming the problem.
 */
export function parseAnswer(x: Element): SubmittedAnswer | undefined {
  const form = parseForm(x);
  if (form.formType !== FORM_TYPE_QUESTION) throw bad(`the form is not a ${FORM_TYPE_QUESTION} answer`);
  if (form.type === "cancel") return undefined;
  if (form.type !== "submit") throw bad("an answer is a form of type submit");
  const key = formValue(form, "key");
  if (!key) throw bad("the answer has no key");
  return answerFromForm(form, key);
}

/** The answer fields of a submitted form whose question is known (ad-hoc commands keep the key). */
export function answerFromForm(form: DataForm, key: string): SubmittedAnswer {
  return {
    key,
    allow: oneOf(form, "decision", ["allow", "deny"] as const) === "allow",
    scope: oneOf(form, "scope", ["caller", "domain", "everyone"] as const, "caller"),
    once: oneOf(form, "duration", ["always", "once"] as const, "always") === "once",
    nodes: selection(form, "nodes"),
    fieldNames: selection(form, "fields"),
    categories: selection(form, "categories"),
    parameterNames: selection(form, "parameters"),
  };
}

function subset<T>(
  chosen: readonly string[] | undefined,
  asked: readonly T[],
  key: (t: T) => string,
  what: string,
) {
  if (chosen === undefined) return null;
  const byKey = new Map(asked.map((a) => [key(a), a]));
  const out: T[] = [];
  for (const c of chosen) {
    const item = byKey.get(c);
    if (item === undefined) throw bad(`${what} '${c}' was not asked for`);
    if (!out.includes(item)) out.push(item);
  }
  return out;
}

/** The rule an answer makes; the selections must be among what was asked. */
export function ruleFromAnswer(q: Question, a: SubmittedAnswer): NewRule {
  const nodes = subset<NodeRef>(a.nodes, q.request.nodes, nodeKey, "node");
  const fieldNames = q.kind === "read" ? subset(a.fieldNames, q.request.fieldNames, (f) => f, "field") : null;
  const categories =
    q.kind === "read"
      ? subset<FieldCategory>(a.categories, q.request.categories, (c) => c, "category")
      : null;
  const parameterNames =
    q.kind === "control" ? subset(a.parameterNames, q.request.parameterNames, (p) => p, "parameter") : null;
  if (q.kind !== "read" && (a.fieldNames !== undefined || a.categories !== undefined)) {
    throw bad("fields and categories belong to read questions");
  }
  if (q.kind !== "control" && a.parameterNames !== undefined)
    throw bad("parameters belong to control questions");
  if (q.kind === "friend" && a.nodes !== undefined) throw bad("nodes do not belong to friendship questions");
  const subject = a.scope === "caller" ? q.caller : a.scope === "domain" ? domainOf(q.caller) : "";
  return {
    thing: q.thing,
    owner: q.owner,
    kind: q.kind,
    allow: a.allow,
    scope: a.scope,
    subject,
    nodes,
    fieldNames,
    categories,
    parameterNames,
    once: a.once,
    origin: `question:${q.key}`,
  };
}
