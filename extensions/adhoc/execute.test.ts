/**
 * Finer points of command execution over a real broker and client: the session's language, the
 * form types a requester may send, a right withdrawn mid-session; and two requests racing on one
 * session, against the executor itself.
 * References: XEP-0050 §3.3 (sessions), §3.5.1 (submit; cancel read as submit), §3.7 (xml:lang:
 * the first one applies to the session), §4.4 (bad-payload).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Element } from "ltx";
import { modules } from "../../modules.ts";
import { parseJid } from "../../server/jid.ts";
import type { Module } from "../../server/modules/module.ts";
import { createLogger } from "../../server/observability/logger.ts";
import { startTestBroker, type TestBroker } from "../../server/testing/broker.ts";
import { loginTo, type TestClient, xml } from "../../test/support/xmpp-client.ts";
import { formToXml, formValue } from "../data-forms/form.ts";
import { type AdhocCommand, installCommands, NS_COMMANDS } from "./commands.ts";
import { executeCommand } from "./execute.ts";
import { CommandSessions } from "./sessions.ts";
import { refusedWith, runCommand } from "./testing.ts";

const HOST = "localhost";
let revoked = false;
/** What the command awaits on the value "wait": set by the test that races two requests. */
let onWait: () => Promise<void> = async () => {};

/** Two stages; stage 1 echoes the field "v" and the session's language (after onWait on "wait"). */
const echo: AdhocCommand = {
  node: "echo",
  name: "Echo",
  allowed: () => !revoked,
  async run(ctx) {
    if (ctx.stage === 0) {
      return { status: "executing", form: { type: "form", fields: [{ var: "v", values: [] }] } };
    }
    const v = ctx.form ? formValue(ctx.form, "v") : undefined;
    if (v === "wait") await onWait();
    return { status: "completed", note: { type: "info", text: `${v} (${ctx.lang ?? "no lang"})` } };
  },
};

const testModule: Module = {
  name: "adhoc-execute-test",
  depends: ["disco"],
  start: (api) => installCommands(api, [echo]),
};

describe("XEP-0050 execution details", () => {
  let broker: TestBroker;
  let client: TestClient;

  before(async () => {
    broker = await startTestBroker({ modules: [...modules, testModule] });
    await broker.addUser("alice", "alice-pw");
    client = await loginTo(broker, "alice", "alice-pw");
  });

  after(async () => {
    await client?.stop().catch(() => {});
    await broker?.stop();
  });

  test("the first xml:lang of a session applies to all of it and is stated in replies (§3.7)", async () => {
    const first = await runCommand(client, HOST, "echo", { lang: "de-CH" });
    assert.equal(first.lang, "de-CH");
    const done = await runCommand(client, HOST, "echo", {
      sessionid: first.sessionid!,
      lang: "fr",
      fields: { v: "x" },
    });
    assert.equal(done.lang, "de-CH");
    assert.deepEqual(done.notes, [{ type: "info", text: "x (de-CH)" }]);
  });

  test("only submit forms are accepted; a cancel form counts as submit (§3.5.1)", async () => {
    const send = (sessionid: string, type: string) =>
      client.iqCaller.request(
        xml(
          "iq",
          { type: "set", to: HOST },
          xml(
            "command",
            { xmlns: NS_COMMANDS, node: "echo", sessionid },
            xml("x", { xmlns: "jabber:x:data", type }, xml("field", { var: "v" }, xml("value", {}, "c"))),
          ),
        ),
      );
    const { sessionid } = await runCommand(client, HOST, "echo");
    await refusedWith(send(sessionid!, "form"), "bad-request", "bad-payload");
    await refusedWith(send(sessionid!, "nonsense"), "bad-request", "bad-payload");
    const done = await send(sessionid!, "cancel");
    assert.equal(done.getChild("command", NS_COMMANDS)?.attrs.status, "completed");
  });

  test("a requester whose right is withdrawn mid-session cannot finish (forbidden)", async () => {
    const { sessionid } = await runCommand(client, HOST, "echo");
    revoked = true;
    try {
      await refusedWith(
        runCommand(client, HOST, "echo", { sessionid: sessionid!, fields: { v: "x" } }),
        "forbidden",
      );
    } finally {
      revoked = false;
    }
  });
});

// A client stream hands its stanzas over one at a time, so this race needs two callers on one
// session, which only the executor itself can show: called directly here.
describe("two requests racing on one session", () => {
  test("the second is refused with unexpected-request; the first completes", async () => {
    let reached = () => {};
    let release = () => {};
    const inside = new Promise<void>((resolve) => {
      reached = resolve;
    });
    onWait = () => {
      reached();
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    };
    const deps = {
      commands: new Map([[echo.node, echo]]),
      sessions: new CommandSessions({ ttlMs: 60_000, maxPerJid: 5, maxTotal: 10, maxEnded: 10 }),
      log: createLogger("silent"),
    };
    const from = parseJid("alice@localhost/desk");
    const request = (attrs: Record<string, string>, value?: string) => {
      const payload = new Element("command", { xmlns: NS_COMMANDS, node: "echo", ...attrs });
      if (value) payload.cnode(formToXml({ type: "submit", fields: [{ var: "v", values: [value] }] }));
      return executeCommand(deps, {
        from,
        stanza: new Element("iq", { type: "set" }).cnode(payload).root(),
        payload,
      });
    };
    const sessionid = (await request({})).attrs.sessionid as string;
    const slow = request({ sessionid }, "wait");
    await inside; // the first request is now running inside the command
    await assert.rejects(request({ sessionid }, "again"), { condition: "unexpected-request" });
    release();
    const done = await slow;
    assert.equal(done.attrs.status, "completed");
    assert.equal(done.getChildText("note"), "wait (no lang)");
  });
});
