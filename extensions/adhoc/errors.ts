/**
 * XEP-0050's specific error conditions, carried next to the general one inside <error/>.
 * References: XEP-0050 §4.4 (command execution errors), RFC 6120 §8.3.2 (application-specific
 * condition element).
 */
import { Element } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";

export const NS_COMMANDS = "http://jabber.org/protocol/commands";

export type CommandErrorCondition =
  | "malformed-action"
  | "bad-action"
  | "bad-locale"
  | "bad-payload"
  | "bad-sessionid"
  | "session-expired";

/**
 * A StanzaError with the XEP-0050 §4.4 specific condition: session-expired goes with
 * <not-allowed/> (type cancel), every other one with <bad-request/> (type modify).
 * Commands throw these too, e.g. bad-payload when a required field is missing.
 */
export function commandError(condition: CommandErrorCondition, text?: string): StanzaError {
  const appElement = new Element(condition, { xmlns: NS_COMMANDS });
  return condition === "session-expired"
    ? new StanzaError("not-allowed", text, { appElement })
    : new StanzaError("bad-request", text, { appElement });
}
