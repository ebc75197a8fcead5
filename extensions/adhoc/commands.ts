/**
 * XEP-0050 ad-hoc commands on an entity (the domain or a component): the command list and each
 * command's node in service discovery, and execution with sessions.
 * A module that installs commands depends on "disco" (it registers its nodes there).
 * References: XEP-0050 §2.1 (feature in disco#info), §2.2 (command list node, identities
 * automation/command-list and automation/command-node, forbidden for a command the requester may
 * not run), §3.2 (nodes unique per JID), §5 (an entity reports its own command nodes only).
 */
import { Element } from "ltx";
import type { ModuleApi } from "../../server/modules/module.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { NS_DATA } from "../data-forms/form.ts";
import { DISCO_NODES_SERVICE, type DiscoNodes } from "../disco/disco.ts";
import { NS_COMMANDS } from "./errors.ts";
import { executeCommand } from "./execute.ts";
import { CommandSessions } from "./sessions.ts";
import type { AdhocCommand, CommandOptions } from "./types.ts";

export { type CommandErrorCondition, commandError, NS_COMMANDS } from "./errors.ts";
export type {
  AdhocCommand,
  CommandContext,
  CommandOptions,
  CommandStep,
  Note,
  StageAction,
} from "./types.ts";

const DEFAULTS = {
  sessionTtlMs: 10 * 60_000,
  maxSessionsPerJid: 5,
  maxSessions: 10_000,
} as const;

/**
 * Installs XEP-0050 on an entity (the host or a component ModuleApi): disco#items node, disco#info
 * per command, execute with sessions. Call it once per entity with all of that entity's commands:
 * a second call on the same entity fails at start (its iq and disco nodes are taken).
 */
export function installCommands(
  api: ModuleApi,
  commands: readonly AdhocCommand[],
  opts: CommandOptions = {},
): void {
  const byNode = new Map<string, AdhocCommand>();
  for (const command of commands) {
    if (command.node === "" || command.node === NS_COMMANDS || byNode.has(command.node)) {
      throw new Error(`ad-hoc command node '${command.node}' on ${api.domain} is empty or taken`); // §3.2
    }
    byNode.set(command.node, command);
  }
  const ttlMs = opts.sessionTtlMs ?? DEFAULTS.sessionTtlMs;
  const sessions = new CommandSessions({
    ttlMs,
    maxPerJid: opts.maxSessionsPerJid ?? DEFAULTS.maxSessionsPerJid,
    maxTotal: opts.maxSessions ?? DEFAULTS.maxSessions,
    maxEnded: opts.maxSessions ?? DEFAULTS.maxSessions,
  });
  const deps = { commands: byNode, sessions, log: api.log };

  // XEP-0050 §2.1: answering the namespace also lists it in this entity's disco#info.
  api.iq("set", NS_COMMANDS, "command", ({ from, stanza, payload }) =>
    executeCommand(deps, { from, stanza, payload }),
  );
  api.feature(NS_COMMANDS);
  // Lapsed sessions are refused when used; this frees the ones nobody comes back to.
  api.every(Math.min(Math.max(ttlMs, 1000), 60_000), () => sessions.sweep());

  const disco = api.use<DiscoNodes>(DISCO_NODES_SERVICE);
  disco.add(api.domain, NS_COMMANDS, {
    info: () => [new Element("identity", { category: "automation", type: "command-list" })],
    // XEP-0050 §2.2: the list may differ per requester; §5: only this entity's own nodes.
    items: async (from) => {
      const items: Element[] = [];
      for (const command of byNode.values()) {
        if (await command.allowed(from)) {
          items.push(new Element("item", { jid: api.domain, node: command.node, name: command.name }));
        }
      }
      return items;
    },
  });
  for (const command of byNode.values()) {
    disco.add(api.domain, command.node, {
      info: async (from) => {
        // XEP-0050 §2.2: a command the requester may not run SHOULD be answered with forbidden.
        if (!(await command.allowed(from)))
          throw new StanzaError("forbidden", "you may not run this command");
        return [
          new Element("identity", { category: "automation", type: "command-node", name: command.name }),
          new Element("feature", { var: NS_COMMANDS }),
          new Element("feature", { var: NS_DATA }),
        ];
      },
    });
  }
}
