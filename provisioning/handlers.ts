/**
 * The provisioning component's XMPP surface: isFriend, canRead and canControl from things (the
 * sender's bare JID is the thing), and owners' answers to questions, either as an iq set carrying
 * the submitted form (errors come back as iq errors) or, the XEP-0004 way, as a message carrying
 * it (errors come back as a message error).
 * References: XEP-0324 §3.1 (isFriend), §3.3 (canRead), §3.4 (canControl); XEP-0004 §3.1 (submit);
 * RFC 6120 §8.3 (error replies); docs/protocol/provisioning-questions.md (answers).
 */
import type { Element } from "ltx";
import { tryParseJid } from "../server/jid.ts";
import type { IqHandler, ModuleApi, StanzaHook } from "../server/modules/module.ts";
import { StanzaError } from "../server/xml/errors.ts";
import { errorReply } from "../server/xml/stanza.ts";
import type { DecisionEngine } from "./decisions.ts";
import {
  decodeCanControl,
  decodeCanRead,
  decodeIsFriend,
  encodeCanControlResponse,
  encodeCanReadResponse,
  encodeIsFriendResponse,
} from "./protocol.ts";
import { findAnswerForm } from "./questions.ts";
import type { ProvisioningService } from "./service.ts";

/** The other party of a decision: the `jid` attribute, as a bare JID. */
function callerOf(jid: string): string {
  const parsed = tryParseJid(jid);
  if (!parsed) throw new StanzaError("jid-malformed", `jid='${jid}' is not a JID`);
  return parsed.bare; // XEP-0324 §3.1: resources are ignored
}

const NO_ITEMS = { nodes: [], fieldNames: [], categories: [], parameterNames: [] } as const;

export function isFriendHandler(engine: DecisionEngine): IqHandler {
  return async ({ from, payload }) => {
    const { jid } = decodeIsFriend(payload);
    const verdict = await engine.decide(
      from.bare,
      { kind: "friend", caller: callerOf(jid), ...NO_ITEMS },
      "thing",
    );
    return encodeIsFriendResponse(jid, verdict.outcome === "allow");
  };
}

export function canReadHandler(engine: DecisionEngine): IqHandler {
  return async ({ from, payload }) => {
    const q = decodeCanRead(payload);
    const verdict = await engine.decide(
      from.bare,
      {
        kind: "read",
        caller: callerOf(q.jid),
        nodes: q.nodes,
        fieldNames: q.fieldNames,
        categories: q.categories,
        parameterNames: [],
      },
      "thing",
    );
    const allowed = verdict.outcome === "allow";
    // XEP-0324 §3.3: a denial repeats the request; an allowance lists what may be read.
    return encodeCanReadResponse({
      jid: q.jid,
      result: allowed,
      categories: allowed ? verdict.categories : q.categories,
      nodes: allowed ? verdict.nodes : q.nodes,
      fieldNames: allowed ? verdict.fieldNames : q.fieldNames,
    });
  };
}

export function canControlHandler(engine: DecisionEngine): IqHandler {
  return async ({ from, payload }) => {
    const q = decodeCanControl(payload);
    const verdict = await engine.decide(
      from.bare,
      {
        kind: "control",
        caller: callerOf(q.jid),
        nodes: q.nodes,
        fieldNames: [],
        categories: [],
        parameterNames: q.parameterNames,
      },
      "thing",
    );
    const allowed = verdict.outcome === "allow";
    return encodeCanControlResponse({
      jid: q.jid,
      result: allowed,
      nodes: allowed ? verdict.nodes : q.nodes,
      parameterNames: allowed ? verdict.parameterNames : q.parameterNames,
    });
  };
}

/** iq set with the submitted form as payload: an empty result, or the error. */
export function answerIqHandler(service: ProvisioningService): IqHandler {
  return async ({ from, payload }) => {
    await service.answerForm(from.bare, payload);
    return undefined;
  };
}

/** A message carrying a submitted question form; anything else addressed to the service is ignored. */
export function answerMessageHook(api: ModuleApi, service: ProvisioningService): StanzaHook {
  return async ({ stanza, from }) => {
    const type = stanza.attrs.type;
    if (type === "error" || type === "groupchat") return true; // never answer an error (RFC 6120 §8.3.1)
    const x = findAnswerForm(stanza as Element);
    if (!x) return true;
    try {
      await service.answerForm(from.bare, x);
    } catch (err) {
      const error = err instanceof StanzaError ? err : new StanzaError("internal-server-error");
      if (!(err instanceof StanzaError)) api.log.error({ err }, "answer by message failed");
      api.send(errorReply(stanza as Element, error));
    }
    return true;
  };
}
