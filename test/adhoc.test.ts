/**
 * XEP-0050 ad-hoc commands over a real broker with the independent @xmpp/client: discovery (the
 * list differs per requester), single- and multi-stage execution with state, prev and cancel,
 * sessions bound to the full JID that started them, expiry, the XEP-0050 error conditions, and
 * commands on a component.
 * References: XEP-0050 §2.1, §2.2, §2.4.1–§2.4.3, §3.3, §3.4, §3.7, §4.4, §5.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type AdhocCommand,
  commandError,
  installCommands,
  NS_COMMANDS,
} from "../extensions/adhoc/commands.ts";
import {
  discoInfo,
  fieldValues,
  listCommands,
  refusedWith,
  runCommand,
} from "../extensions/adhoc/testing.ts";
import { formValue } from "../extensions/data-forms/form.ts";
import { pause } from "../extensions/roster/testing.ts";
import { modules } from "../modules.ts";
import type { Module } from "../server/modules/module.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { StanzaError } from "../server/xml/errors.ts";
import { loginTo, type TestClient } from "./support/xmpp-client.ts";

const HOST = "localhost";
const SVC = "svc.localhost";
const SVC_TTL_MS = 400;

const anyLocal = (from: { domain: string }) => from.domain === HOST;

/** Single stage: says who ran it, in which language. */
const whoami: AdhocCommand = {
  node: "whoami",
  name: "Who am I",
  allowed: anyLocal,
  async run(ctx) {
    return {
      status: "completed",
      note: { type: "info", text: `you are ${ctx.from.full}` },
      form: { type: "result", fields: [{ var: "jid", values: [ctx.from.full] }] },
    };
  },
};

/** Two stages: a name (next), then a colour (prev or complete); the name is kept in state. */
const wizard: AdhocCommand = {
  node: "wizard",
  name: "Favourite colour",
  allowed: anyLocal,
  async run(ctx) {
    const askName = () =>
      ({
        status: "executing",
        actions: ["next"],
        form: {
          type: "form",
          title: "Your name",
          fields: [{ var: "name", type: "text-single", required: true, values: [] }],
        },
      }) as const;
    if (ctx.stage === 0) return askName();
    if (ctx.stage === 1) {
      const name = ctx.form && formValue(ctx.form, "name");
      if (!name) throw commandError("bad-payload", "name is required");
      ctx.state.set("name", name);
      return {
        status: "executing",
        actions: ["prev", "complete"],
        execute: "complete",
        form: { type: "form", fields: [{ var: "colour", type: "text-single", values: [] }] },
      };
    }
    if (ctx.action === "prev") {
      // XEP-0050 §2.4.2: the previous stage again, with the remembered value.
      const again = askName();
      const remembered = String(ctx.state.get("name"));
      return {
        ...again,
        form: { ...again.form, fields: [{ ...again.form.fields[0], values: [remembered] }] },
      };
    }
    const colour = ctx.form ? formValue(ctx.form, "colour") : undefined;
    return { status: "completed", note: { type: "info", text: `${ctx.state.get("name")} likes ${colour}` } };
  },
};

/** Only alice may see or run it. */
const adminOnly: AdhocCommand = {
  node: "admin",
  name: "Admin only",
  allowed: (from) => from.bare === `alice@${HOST}`,
  async run() {
    return { status: "completed", note: { type: "info", text: "done" } };
  },
};

/** Speaks English only (XEP-0050 §3.7), and fails on demand. */
const picky: AdhocCommand = {
  node: "picky",
  name: "Picky",
  allowed: anyLocal,
  async run(ctx) {
    if (ctx.lang && !ctx.lang.startsWith("en")) throw commandError("bad-locale", "English only");
    throw new StanzaError("not-acceptable", "never today");
  },
};

const crash: AdhocCommand = {
  node: "crash",
  name: "Crash",
  allowed: anyLocal,
  async run() {
    throw new Error("bug in a command");
  },
};

/** On the component: one stage that waits for a form, short sessions. */
const ticket: AdhocCommand = {
  node: "ticket",
  name: "Open a ticket",
  allowed: anyLocal,
  async run(ctx) {
    if (ctx.stage === 0) {
      return {
        status: "executing",
        form: { type: "form", fields: [{ var: "subject", type: "text-single", values: [] }] },
      };
    }
    return {
      status: "completed",
      note: { type: "info", text: `ticket: ${formValue(ctx.form!, "subject")}` },
    };
  },
};

const adhocTestModule: Module = {
  name: "adhoc-test",
  depends: ["disco"],
  start(api) {
    installCommands(api, [whoami, wizard, adminOnly, picky, crash]);
    installCommands(api.component("svc", "Test service"), [ticket], {
      sessionTtlMs: SVC_TTL_MS,
      maxSessionsPerJid: 2,
    });
  },
};

describe("XEP-0050 ad-hoc commands", () => {
  let broker: TestBroker;
  let phone: TestClient;
  let laptop: TestClient;
  let bob: TestClient;

  before(async () => {
    broker = await startTestBroker({ modules: [...modules, adhocTestModule] });
    await broker.addUser("alice", "alice-pw");
    await broker.addUser("bob", "bob-pw");
    phone = await loginTo(broker, "alice", "alice-pw", { resource: "phone" });
    laptop = await loginTo(broker, "alice", "alice-pw", { resource: "laptop" });
    bob = await loginTo(broker, "bob", "bob-pw", { resource: "desk" });
  });

  after(async () => {
    for (const c of [phone, laptop, bob]) await c?.stop().catch(() => {});
    await broker?.stop();
  });

  test("the domain and the component advertise commands in disco#info (§2.1)", async () => {
    assert.ok((await discoInfo(phone, HOST)).features.includes(NS_COMMANDS));
    assert.ok((await discoInfo(phone, SVC)).features.includes(NS_COMMANDS));
    const listNode = await discoInfo(phone, HOST, NS_COMMANDS);
    assert.deepEqual(listNode.identities, ["automation/command-list"]);
  });

  test("each requester sees the commands it may run (§2.2)", async () => {
    const alices = await listCommands(phone, HOST);
    assert.deepEqual([...alices.keys()].sort(), ["admin", "crash", "picky", "whoami", "wizard"]);
    assert.equal(alices.get("wizard"), "Favourite colour");
    const bobs = await listCommands(bob, HOST);
    assert.deepEqual([...bobs.keys()].sort(), ["crash", "picky", "whoami", "wizard"]);
    assert.deepEqual([...(await listCommands(bob, SVC)).keys()], ["ticket"]);
  });

  test("disco#info on a command node; forbidden for a command one may not run (§2.2)", async () => {
    const info = await discoInfo(phone, HOST, "admin");
    assert.equal(info.node, "admin");
    assert.deepEqual(info.identities, ["automation/command-node"]);
    assert.deepEqual(info.names, ["Admin only"]);
    assert.ok(info.features.includes(NS_COMMANDS) && info.features.includes("jabber:x:data"));
    await refusedWith(discoInfo(bob, HOST, "admin"), "forbidden");
    await refusedWith(discoInfo(bob, HOST, "no-such-node"), "item-not-found");
  });

  test("a single-stage command completes at once (§2.4.1)", async () => {
    const reply = await runCommand(phone, HOST, "whoami", { action: "execute" });
    assert.equal(reply.status, "completed");
    assert.equal(reply.node, "whoami");
    assert.ok(reply.sessionid);
    assert.deepEqual(reply.notes, [{ type: "info", text: `you are alice@${HOST}/phone` }]);
    assert.equal(reply.form?.attrs.type, "result");
    assert.deepEqual(fieldValues(reply.form, "jid"), [`alice@${HOST}/phone`]);
    // The session is over: its id cannot be used again (§3.3).
    await refusedWith(
      runCommand(phone, HOST, "whoami", { sessionid: reply.sessionid!, action: "complete" }),
      "not-allowed",
      "session-expired",
    );
  });

  test("a multi-stage command keeps state between stages, goes back with prev (§2.4.2)", async () => {
    const first = await runCommand(phone, HOST, "wizard");
    assert.equal(first.status, "executing");
    assert.deepEqual(first.actions, ["next"]);
    assert.equal(first.execute, "next");
    assert.equal(first.form?.attrs.type, "form");
    const id = first.sessionid!;

    // A required field missing: bad-payload, and the session survives to try again.
    await refusedWith(
      runCommand(phone, HOST, "wizard", { sessionid: id, fields: {} }),
      "bad-request",
      "bad-payload",
    );
    // "complete" is not offered at this stage.
    await refusedWith(
      runCommand(phone, HOST, "wizard", { sessionid: id, action: "complete", fields: { name: "Alice" } }),
      "bad-request",
      "bad-action",
    );

    // No action = execute = the stage's default, next.
    const second = await runCommand(phone, HOST, "wizard", { sessionid: id, fields: { name: "Alice" } });
    assert.equal(second.status, "executing");
    assert.equal(second.sessionid, id);
    assert.deepEqual(second.actions, ["prev", "complete"]);
    assert.equal(second.execute, "complete");

    const back = await runCommand(phone, HOST, "wizard", { sessionid: id, action: "prev" });
    assert.equal(back.status, "executing");
    assert.deepEqual(back.actions, ["next"]);
    assert.deepEqual(fieldValues(back.form, "name"), ["Alice"], "the remembered value");

    await runCommand(phone, HOST, "wizard", { sessionid: id, action: "next", fields: { name: "Alicia" } });
    const done = await runCommand(phone, HOST, "wizard", {
      sessionid: id,
      action: "complete",
      fields: { colour: "teal" },
    });
    assert.equal(done.status, "completed");
    assert.deepEqual(done.notes, [{ type: "info", text: "Alicia likes teal" }]);
  });

  test("cancel ends the session with status canceled (§2.4.3)", async () => {
    const first = await runCommand(bob, HOST, "wizard");
    const canceled = await runCommand(bob, HOST, "wizard", { sessionid: first.sessionid!, action: "cancel" });
    assert.equal(canceled.status, "canceled");
    assert.equal(canceled.sessionid, first.sessionid);
    await refusedWith(
      runCommand(bob, HOST, "wizard", { sessionid: first.sessionid!, fields: { name: "Bob" } }),
      "not-allowed",
      "session-expired",
    );
  });

  test("only the full JID that started a session can continue it (§3.3)", async () => {
    const first = await runCommand(phone, HOST, "wizard");
    const id = first.sessionid!;
    for (const other of [laptop, bob]) {
      await refusedWith(
        runCommand(other, HOST, "wizard", { sessionid: id, fields: { name: "Mallory" } }),
        "bad-request",
        "bad-sessionid",
      );
      await refusedWith(
        runCommand(other, HOST, "wizard", { sessionid: id, action: "cancel" }),
        "bad-request",
        "bad-sessionid",
      );
    }
    // Untouched by all that: the owner carries on.
    const second = await runCommand(phone, HOST, "wizard", { sessionid: id, fields: { name: "Alice" } });
    assert.equal(second.status, "executing");
    // A session id belongs to its node.
    await refusedWith(
      runCommand(phone, HOST, "whoami", { sessionid: id, action: "complete" }),
      "bad-request",
      "bad-sessionid",
    );
  });

  test("a session lapses after inactivity: session-expired (§3.3, §4.4)", async () => {
    const first = await runCommand(phone, SVC, "ticket");
    assert.equal(first.status, "executing");
    assert.deepEqual(first.actions, ["complete"], "a form without declared actions completes");
    await pause(SVC_TTL_MS + 200);
    await refusedWith(
      runCommand(phone, SVC, "ticket", { sessionid: first.sessionid!, fields: { subject: "late" } }),
      "not-allowed",
      "session-expired",
    );
    // A fresh session works, and execute means complete here.
    const again = await runCommand(phone, SVC, "ticket");
    const done = await runCommand(phone, SVC, "ticket", {
      sessionid: again.sessionid!,
      fields: { subject: "hi" },
    });
    assert.deepEqual(done.notes, [{ type: "info", text: "ticket: hi" }]);
  });

  test("a requester past its session limit loses its oldest session", async () => {
    const [a, b, c] = [
      await runCommand(bob, SVC, "ticket"),
      await runCommand(bob, SVC, "ticket"),
      await runCommand(bob, SVC, "ticket"),
    ];
    await refusedWith(
      runCommand(bob, SVC, "ticket", { sessionid: a.sessionid!, fields: { subject: "x" } }),
      "not-allowed",
      "session-expired",
    );
    for (const s of [b, c]) {
      const done = await runCommand(bob, SVC, "ticket", {
        sessionid: s.sessionid!,
        fields: { subject: "x" },
      });
      assert.equal(done.status, "completed");
    }
  });

  test("malformed requests get the XEP-0050 errors (§4.4)", async () => {
    await refusedWith(
      runCommand(phone, HOST, "wizard", { action: "jump" }),
      "bad-request",
      "malformed-action",
    );
    await refusedWith(runCommand(phone, HOST, "no-such-command"), "item-not-found");
    await refusedWith(runCommand(phone, HOST, "wizard", { action: "next" }), "bad-request", "bad-sessionid");
    await refusedWith(
      runCommand(phone, HOST, "wizard", { sessionid: "made-up", action: "next" }),
      "bad-request",
      "bad-sessionid",
    );
    await refusedWith(runCommand(bob, HOST, "admin"), "forbidden");
  });

  test("errors a command throws reach the requester; a crash is internal-server-error", async () => {
    await refusedWith(runCommand(phone, HOST, "picky", { lang: "fr" }), "bad-request", "bad-locale");
    await refusedWith(runCommand(phone, HOST, "picky", { lang: "en" }), "not-acceptable");
    await refusedWith(runCommand(phone, HOST, "crash"), "internal-server-error");
    // The broker carries on.
    assert.equal((await runCommand(phone, HOST, "whoami")).status, "completed");
  });
});
