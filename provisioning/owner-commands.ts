/**
 * Owner commands on provisioning.<domain> as XEP-0050 ad-hoc commands, so any capable client can
 * manage provisioning: list rules, delete rules (chosen ones or all of a thing), answer pending
 * questions, read the audit trail, and switch broker-side enforcement. Every command acts only on
 * the requester's own things (the service checks ownership); anyone with an account may run them.
 * References: XEP-0050 §2.2 (command list), §2.4 (multi-stage execution), §3.6 (notes on
 * completion); XEP-0004 §3.3 (field types); docs/protocol/provisioning-questions.md.
 */

import { type AdhocCommand, type CommandStep, commandError } from "../extensions/adhoc/commands.ts";
import {
  type DataForm,
  type FormField,
  formValue,
  formValues,
  parseBoolean,
} from "../extensions/data-forms/form.ts";
import type { ThingRegistryService } from "../thing-registry/module.ts";
import { answerFromForm, questionForm, questionText } from "./questions.ts";
import type { Rule } from "./rules.ts";
import { nodeLabel } from "./rules.ts";
import type { ProvisioningService } from "./service.ts";

export const OWNER_COMMAND_NODES = {
  rules: "provisioning:rules",
  deleteRules: "provisioning:delete-rules",
  questions: "provisioning:questions",
  audit: "provisioning:audit",
  enforcement: "provisioning:enforcement",
} as const;

/** Lines of a result form (audit, rule lists) at most. */
const MAX_LINES = 500;

function describeRule(r: Rule): string {
  const what: string[] = [];
  if (r.nodes) what.push(`nodes ${r.nodes.map(nodeLabel).join(", ")}`);
  if (r.fieldNames) what.push(`fields ${r.fieldNames.join(", ")}`);
  if (r.categories) what.push(`categories ${r.categories.join(", ")}`);
  if (r.parameterNames) what.push(`parameters ${r.parameterNames.join(", ")}`);
  const who =
    r.scope === "everyone" ? "everyone" : r.scope === "domain" ? `anyone at ${r.subject}` : r.subject;
  return `#${r.id} ${r.thing}: ${r.allow ? "allow" : "deny"} ${r.kind} for ${who}${what.length ? ` (${what.join("; ")})` : ""}${r.once ? ", once" : ""}`;
}

const completed = (text: string, type: "info" | "warn" | "error" = "info", form?: DataForm): CommandStep => ({
  status: "completed",
  note: { type, text },
  ...(form && { form }),
});

/** XEP-0050 §2.4: a stage that shows a form to fill in; "complete" submits it. */
function formStage(
  title: string,
  fields: readonly FormField[],
  instructions?: readonly string[],
): CommandStep {
  return {
    status: "executing",
    form: { type: "form", title, ...(instructions && { instructions }), fields },
  };
}

function resultForm(title: string, name: string, lines: readonly string[]): DataForm {
  return {
    type: "result",
    title,
    fields: [{ var: name, type: "text-multi", values: lines.slice(0, MAX_LINES) }],
  };
}

function thingChoice(things: readonly string[], required: boolean, label: string): FormField {
  return {
    var: "thing",
    type: "list-single",
    label,
    ...(required && { required: true }),
    values: [],
    options: things.map((t) => ({ value: t, label: t })),
  };
}

function chosenThing(form: DataForm | undefined, things: readonly string[]): string | undefined {
  const thing = form ? formValue(form, "thing") : undefined;
  if (thing === undefined || thing === "") return undefined;
  if (!things.includes(thing)) throw commandError("bad-payload", `you own no thing ${thing}`);
  return thing;
}

export function ownerCommands(service: ProvisioningService, registry: ThingRegistryService): AdhocCommand[] {
  const anyAccount = (from: { local: string }) => from.local !== "";
  /** Things the owner has, and things the owner still has rules for. */
  const thingsOf = async (owner: string) => {
    const things = new Set(await registry.thingsOf(owner));
    for (const r of await service.listRules(owner)) things.add(r.thing);
    return [...things].sort();
  };

  const rules: AdhocCommand = {
    node: OWNER_COMMAND_NODES.rules,
    name: "List provisioning rules",
    allowed: anyAccount,
    async run({ from, stage, form }) {
      const owner = from.bare;
      const things = await thingsOf(owner);
      if (stage === 0) {
        return formStage("Provisioning rules", [thingChoice(things, false, "Only this thing")]);
      }
      const list = await service.listRules(owner, chosenThing(form, things));
      return completed(
        `${list.length} rules`,
        "info",
        resultForm("Provisioning rules", "rules", list.map(describeRule)),
      );
    },
  };

  const deleteRules: AdhocCommand = {
    node: OWNER_COMMAND_NODES.deleteRules,
    name: "Delete provisioning rules",
    allowed: anyAccount,
    async run({ from, stage, form }) {
      const owner = from.bare;
      const list = await service.listRules(owner);
      if (stage === 0) {
        if (list.length === 0) return completed("You have no provisioning rules.");
        const things = [...new Set(list.map((r) => r.thing))].sort();
        return formStage(
          "Delete provisioning rules",
          [
            {
              var: "rules",
              type: "list-multi",
              label: "Rules",
              values: [],
              options: list.slice(0, MAX_LINES).map((r) => ({ value: String(r.id), label: describeRule(r) })),
            },
            thingChoice(things, false, "Every rule of this thing"),
          ],
          ["Choose rules to delete, or a thing whose rules are all deleted."],
        );
      }
      let deleted = 0;
      const thing = form ? formValue(form, "thing") : undefined;
      if (thing) deleted += await service.deleteRules(owner, thing);
      for (const id of form ? formValues(form, "rules") : []) {
        if (!/^\d{1,18}$/.test(id)) throw commandError("bad-payload", `'${id}' is not a rule number`);
        if (list.some((r) => r.id === Number(id) && r.thing !== thing)) {
          await service.deleteRule(owner, Number(id));
          deleted++;
        }
      }
      return completed(`${deleted} rules deleted.`);
    },
  };

  const questions: AdhocCommand = {
    node: OWNER_COMMAND_NODES.questions,
    name: "Answer provisioning questions",
    allowed: anyAccount,
    async run({ from, stage, form, state }) {
      const owner = from.bare;
      if (stage === 0) {
        const pending = await service.pendingQuestions(owner);
        if (pending.length === 0) return completed("No questions are waiting for you.");
        return {
          status: "executing",
          actions: ["next"],
          form: {
            type: "form",
            title: "Pending provisioning questions",
            fields: [
              {
                var: "question",
                type: "list-single",
                label: "Question",
                required: true,
                values: [pending[0]!.key],
                options: pending.map((q) => ({ value: q.key, label: questionText(q) })),
              },
            ],
          },
        };
      }
      if (stage === 1) {
        const key = form ? formValue(form, "question") : undefined;
        const q = (await service.pendingQuestions(owner)).find((p) => p.key === key);
        if (!q) throw commandError("bad-payload", "choose one of the pending questions");
        state.set("key", q.key);
        return {
          status: "executing",
          actions: ["complete"],
          form: { ...questionForm(q), formType: undefined } as DataForm,
        };
      }
      const key = state.get("key") as string;
      if (!form) throw commandError("bad-payload", "the answer form is missing");
      const a = answerFromForm(form, key);
      const rule = await service.answer(owner, key, {
        allow: a.allow,
        scope: a.scope,
        once: a.once,
        ...(a.nodes && { nodes: a.nodes }),
        ...(a.fieldNames && { fieldNames: a.fieldNames }),
        ...(a.categories && { categories: a.categories }),
        ...(a.parameterNames && { parameterNames: a.parameterNames }),
      });
      return completed(`Rule added: ${describeRule(rule)}`);
    },
  };

  const audit: AdhocCommand = {
    node: OWNER_COMMAND_NODES.audit,
    name: "Provisioning audit trail",
    allowed: anyAccount,
    async run({ from, stage, form }) {
      const owner = from.bare;
      if (stage === 0) {
        return formStage("Provisioning audit trail", [
          thingChoice(await thingsOf(owner), false, "Only this thing"),
          { var: "limit", type: "text-single", label: "Entries (newest last)", values: ["50"] },
        ]);
      }
      const limitText = (form && formValue(form, "limit")) || "50";
      if (!/^\d{1,6}$/.test(limitText) || Number(limitText) === 0) {
        throw commandError("bad-payload", `limit '${limitText}' is not a positive number`);
      }
      const thing = chosenThing(form, await thingsOf(owner));
      // The owner sees the entries about their things (owner column), newest `limit` of them.
      const all = await service.audit({ owner, ...(thing && { thing }), limit: 100_000 });
      const lines = all
        .slice(-Number(limitText))
        .map(
          (e) =>
            `${e.at.toISOString()} ${e.action} ${e.thing ?? ""}${e.caller ? ` caller ${e.caller}` : ""} by ${e.actor} ${JSON.stringify(e.detail)}`,
        );
      return completed(
        `${lines.length} entries`,
        "info",
        resultForm("Provisioning audit trail", "entries", lines),
      );
    },
  };

  const enforcement: AdhocCommand = {
    node: OWNER_COMMAND_NODES.enforcement,
    name: "Broker-side enforcement",
    allowed: anyAccount,
    async run({ from, stage, form }) {
      const owner = from.bare;
      const things = await registry.thingsOf(owner);
      if (stage === 0) {
        if (things.length === 0) return completed("You own no things.");
        return formStage(
          "Broker-side enforcement",
          [
            thingChoice(things, true, "Thing"),
            { var: "on", type: "boolean", label: "Enforce in the broker", values: ["true"] },
          ],
          ["When on, the broker refuses readouts and control the rules deny, before they reach the thing."],
        );
      }
      const thing = chosenThing(form, things);
      if (!thing) throw commandError("bad-payload", "choose a thing");
      const on = parseBoolean((form && formValue(form, "on")) ?? "");
      if (on === undefined) throw commandError("bad-payload", "on must be true or false");
      await service.setEnforcement(owner, thing, on);
      return completed(`Broker-side enforcement is ${on ? "on" : "off"} for ${thing}.`);
    },
  };

  return [rules, deleteRules, questions, audit, enforcement];
}
