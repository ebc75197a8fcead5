/**
 * One <command/> request: check it, find or start its session, let the command answer the stage,
 * and write the reply.
 * References: XEP-0050 §2.4.1 (single stage), §2.4.2 (multiple stages, prev), §2.4.3 (cancel),
 * §3.3 (sessions), §3.4 (actions), §3.5.1 (data forms: submit; cancel read as submit), §3.6
 * (completed with error notes), §3.7 (xml:lang), §4.1 (node, sessionid, status, action), §4.2
 * (<actions/>), §4.3 (<note/>), §4.4 (errors).
 */
import { Element } from "ltx";
import type { Jid } from "../../server/jid.ts";
import type { Logger } from "../../server/observability/logger.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { type DataForm, formToXml, NS_DATA, parseForm } from "../data-forms/form.ts";
import { commandError, NS_COMMANDS } from "./errors.ts";
import type { CommandSession, CommandSessions } from "./sessions.ts";
import type { AdhocCommand, CommandContext, CommandStep, StageAction } from "./types.ts";

export interface ExecuteDeps {
  readonly commands: ReadonlyMap<string, AdhocCommand>;
  readonly sessions: CommandSessions;
  readonly log: Logger;
}

export interface CommandRequest {
  readonly from: Jid;
  /** The iq (for its xml:lang) and its <command/> child. */
  readonly stanza: Element;
  readonly payload: Element;
}

type Action = CommandContext["action"];
const ACTIONS: ReadonlySet<string> = new Set<Action>(["execute", "cancel", "prev", "next", "complete"]);
const STAGE_ACTIONS: readonly StageAction[] = ["prev", "next", "complete"];

/** Answers a <command/> with the <command/> of the result; throws StanzaError for the error reply. */
export async function executeCommand(deps: ExecuteDeps, request: CommandRequest): Promise<Element> {
  const { from, stanza, payload } = request;
  const node = payload.attrs.node;
  if (typeof node !== "string" || node === "") {
    throw new StanzaError("bad-request", "the command has no node"); // XEP-0050 §4.1: MUST be present
  }
  const command = deps.commands.get(node);
  if (!command) throw new StanzaError("item-not-found", `no command ${node}`); // XEP-0050 §4.4
  const action = payload.attrs.action ?? "execute"; // XEP-0050 §4.1: execute is the default
  if (!ACTIONS.has(action)) throw commandError("malformed-action", `unknown action '${action}'`);
  // Checked on every stage: a requester who lost the right mid-session cannot finish.
  if (!(await command.allowed(from))) throw new StanzaError("forbidden", "you may not run this command");
  const form = submittedForm(payload);

  const sessionid: unknown = payload.attrs.sessionid;
  if (sessionid === undefined) {
    if (action !== "execute") {
      throw commandError("bad-sessionid", `action '${action}' continues a session: give its sessionid`);
    }
    // XEP-0050 §3.7: xml:lang on the iq (recommended) or on the command.
    const lang = payload.attrs["xml:lang"] ?? stanza.attrs["xml:lang"];
    const session = deps.sessions.start(from, node, typeof lang === "string" && lang ? lang : undefined);
    try {
      return await runStage(deps, command, session, "execute", form);
    } catch (err) {
      deps.sessions.end(session.id); // the requester never learnt this session's id
      throw err;
    }
  }

  if (typeof sessionid !== "string") throw commandError("bad-sessionid");
  const session = deps.sessions.resume(sessionid, from, node);
  if (action === "cancel") {
    // XEP-0050 §2.4.3: the responder frees the session and MUST report the cancel.
    deps.sessions.end(session.id);
    return commandElement(session, "canceled");
  }
  // XEP-0050 §3.4: "execute" stands for the stage's default, otherwise "next".
  const chosen: StageAction =
    action === "execute" ? (session.executeMeans ?? "next") : (action as StageAction);
  if (!session.allowed.includes(chosen)) {
    throw commandError("bad-action", `this stage does not allow '${chosen}'`);
  }
  return runStage(deps, command, session, chosen, form);
}

/** XEP-0050 §3.5.1: the requester answers with a submit form; a cancel form counts as submit. */
function submittedForm(payload: Element): DataForm | undefined {
  const x = payload.getChild("x", NS_DATA);
  if (!x) return undefined;
  let form: DataForm;
  try {
    form = parseForm(x);
  } catch (err) {
    if (err instanceof StanzaError) throw commandError("bad-payload", err.text);
    throw err;
  }
  if (form.type === "cancel") return { ...form, type: "submit" };
  if (form.type !== "submit") throw commandError("bad-payload", `a ${form.type} form cannot be submitted`);
  return form;
}

async function runStage(
  deps: ExecuteDeps,
  command: AdhocCommand,
  session: CommandSession,
  action: Action,
  form: DataForm | undefined,
): Promise<Element> {
  // One request at a time per session: two racing "next"s would both advance the stage.
  if (session.busy) throw new StanzaError("unexpected-request", "the previous request is still running");
  session.busy = true;
  let step: CommandStep;
  try {
    step = await command.run({
      from: session.owner,
      action,
      ...(form && { form }),
      ...(session.lang !== undefined && { lang: session.lang }),
      state: session.state,
      stage: session.stage,
    });
  } catch (err) {
    if (err instanceof StanzaError) throw err; // the session stays: the requester may try again
    deps.log.error({ err, node: command.node }, "ad-hoc command failed");
    deps.sessions.end(session.id);
    throw new StanzaError("internal-server-error", "the command failed");
  } finally {
    session.busy = false;
  }

  if (step.status === "completed") {
    deps.sessions.end(session.id); // XEP-0050 §3.3: completed ends the session
    return commandElement(session, "completed", step.note, step.form);
  }
  const offered = STAGE_ACTIONS.filter(
    (a) => (step.actions ?? ["complete"]).includes(a) || a === step.execute,
  );
  session.allowed = offered;
  session.executeMeans =
    step.execute ??
    (offered.includes("next") ? "next" : offered.includes("complete") ? "complete" : undefined);
  session.stage = action === "prev" ? Math.max(1, session.stage - 1) : session.stage + 1;
  return commandElement(session, "executing", step.note, step.form, offered);
}

function commandElement(
  session: CommandSession,
  status: "executing" | "completed" | "canceled",
  note?: CommandStep["note"],
  form?: DataForm,
  offered?: readonly StageAction[],
): Element {
  const command = new Element("command", {
    xmlns: NS_COMMANDS,
    node: session.node,
    sessionid: session.id,
    status,
    // XEP-0050 §3.7: the responder states the session's language.
    ...(session.lang !== undefined && { "xml:lang": session.lang }),
  });
  if (offered) {
    // XEP-0050 §4.2: the stage's allowed actions and the default one, ahead of the payload.
    const actions = command.c("actions", session.executeMeans ? { execute: session.executeMeans } : {});
    for (const a of offered) actions.c(a);
  }
  if (note) command.c("note", { type: note.type }).t(note.text);
  if (form) command.cnode(formToXml(form));
  return command;
}
