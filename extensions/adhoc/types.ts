/**
 * What a module writes to offer an ad-hoc command: its node, who may run it, and one function that
 * answers each stage.
 * References: XEP-0050 §2.2 (command nodes), §2.4 (execution stages, actions, notes), §3.4
 * (actions), §4.1 (action values), §4.3 (note types).
 */
import type { Jid } from "../../server/jid.ts";
import type { DataForm } from "../data-forms/form.ts";

/** The actions a stage may offer besides cancel, which is always allowed (XEP-0050 §3.4). */
export type StageAction = "prev" | "next" | "complete";

export interface CommandContext {
  /** The requester's full JID; a session only ever sees the one that started it. */
  readonly from: Jid;
  /**
   * "execute" starts the command; later stages get what the requester chose, with "execute"
   * already resolved to the stage's default action. "cancel" never reaches a command: the
   * framework ends the session itself (XEP-0050 §2.4.3), so cancelling cannot do work by mistake.
   */
  readonly action: "execute" | "next" | "prev" | "complete" | "cancel";
  /** The submitted form (XEP-0050 §3.5.1: type submit; a cancel form is read as submit). */
  readonly form?: DataForm;
  /** The session's language (XEP-0050 §3.7: the first one given applies to the whole session). */
  readonly lang?: string;
  /** Per-session scratch space kept between stages. */
  readonly state: Map<string, unknown>;
  /** The stage whose form the requester is answering: 0 on execute, then 1, 2, … */
  readonly stage: number;
}

export interface Note {
  readonly type: "info" | "warn" | "error";
  readonly text: string;
}

export type CommandStep =
  | {
      readonly status: "executing";
      readonly form: DataForm;
      /** Allowed actions of this stage (default: complete only). */
      readonly actions?: readonly StageAction[];
      /** What "execute" means here (default: next if offered, else complete). */
      readonly execute?: StageAction;
      readonly note?: Note;
    }
  | {
      readonly status: "completed";
      readonly form?: DataForm;
      /** XEP-0050 §3.6: a command that completes but fails MUST say so in a note of type error. */
      readonly note?: Note;
    };

export interface AdhocCommand {
  readonly node: string;
  readonly name: string;
  /** Who may see it in disco#items and run it; others get forbidden / do not see it. */
  allowed(from: Jid): boolean | Promise<boolean>;
  /** Answers one stage. Throw StanzaError (see commandError) to refuse a request. */
  run(ctx: CommandContext): Promise<CommandStep>;
}

export interface CommandOptions {
  /** Inactivity after which a session lapses (default 10 minutes). */
  readonly sessionTtlMs?: number;
  /** Open sessions per requester bare JID; one more ends the oldest (default 5). */
  readonly maxSessionsPerJid?: number;
  /** Open sessions on this entity in all (default 10 000). */
  readonly maxSessions?: number;
}
