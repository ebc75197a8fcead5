/**
 * Test helpers for provisioning: a minimal thing played by an independent @xmpp/client that
 * behaves as XEP-0324 asks (owner always allowed, everyone else decided by the provisioning
 * service, answers cached until clearCache), registration and claim through the real registry,
 * and the owner's side (questions, answers).
 * References: XEP-0324 §3.1 (isFriend), §3.3 (canRead), §3.4 (canControl), §3.5 (clearCache),
 * §6.2 of the XEP (the thing caches); XEP-0347 §3.6, §3.9 (register, mine, claimed);
 * XEP-0323 §3.1 (req, accepted, fields), XEP-0325 §3.1 (set, setResponse); RFC 6121 §2.2
 * (a client fetches its roster before it goes online).
 */
import assert from "node:assert/strict";
import { loginAs, pause } from "../extensions/roster/testing.ts";
import { modules as defaultModules } from "../modules.ts";
import type { Module } from "../server/modules/module.ts";
import { startTestBroker, type TestBroker, type TestBrokerOptions } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "../test/support/xmpp-client.ts";
import { provisioningModule } from "./module.ts";
import type { ProvisioningService } from "./service.ts";

export const NS_PROV = "urn:xmpp:iot:provisioning";
export const NS_SD = "urn:xmpp:iot:sensordata";
export const NS_CTRL = "urn:xmpp:iot:control";
export const NS_DISCO = "urn:xmpp:iot:discovery";
export const NS_XDATA = "jabber:x:data";
export const FORM_TYPE = "urn:hanse:iot:provisioning:question:0";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** The sensor values the test thing has: one per node, two fields each. */
const NODES = ["N1", "N2"];
const FIELDS = ["Temperature", "Humidity"];

export interface TestThing {
  readonly client: TestClient;
  /** clearCache requests received (their iq stanzas). */
  readonly clearCaches: Element[];
  /** Readout and control requests that reached the device. */
  readonly requests: Element[];
  /** Questions the thing asked the provisioning service (payloads). */
  readonly asked: Element[];
  /** Friend/unfriend recommendations received. */
  readonly recommendations: Element[];
  /** Control values applied. */
  readonly applied: Record<string, string>;
  owner: string | undefined;
}

const errorEl = (condition: string, text?: string) =>
  xml(
    "error",
    { type: condition === "forbidden" ? "auth" : "cancel" },
    xml(condition, { xmlns: NS_STANZAS }),
    ...(text ? [xml("text", { xmlns: NS_STANZAS }, text)] : []),
  );

const bareOf = (jid: string) => jid.split("/")[0]!;

/** Makes `client` behave as a provisioned thing; the provisioning service is `prov`. */
export function actAsThing(client: TestClient, prov: string): TestThing {
  const thing: TestThing = {
    client,
    clearCaches: [],
    requests: [],
    asked: [],
    recommendations: [],
    applied: {},
    owner: undefined,
  };
  const cache = new Map<string, Element>();

  async function ask(payload: Element): Promise<Element> {
    const key = payload.toString();
    const hit = cache.get(key);
    if (hit) return hit;
    thing.asked.push(payload);
    const result = await client.iqCaller.request(xml("iq", { type: "get", to: prov }, payload), 10_000);
    const answer = result.getChildElements()[0]!;
    cache.set(key, answer);
    return answer;
  }

  client.iqCallee.set(NS_DISCO, "claimed", ({ stanza }) => {
    thing.owner = stanza.getChild("claimed")?.attrs.jid;
    return {};
  });
  client.iqCallee.set(NS_PROV, "clearCache", ({ stanza }) => {
    const from = stanza.attrs.from as string;
    if (bareOf(String(from)) !== prov) return errorEl("forbidden"); // XEP-0324: only from the service
    thing.clearCaches.push(stanza);
    cache.clear();
    return xml("clearCacheResponse", { xmlns: NS_PROV });
  });
  client.on("stanza", (stanza: Element) => {
    if (!stanza.is("message") || bareOf(stanza.attrs.from ?? "") !== prov) return;
    const rec = stanza.getChild("friend", NS_PROV) ?? stanza.getChild("unfriend", NS_PROV);
    if (rec) thing.recommendations.push(rec);
  });

  client.iqCallee.get(NS_SD, "req", async ({ stanza }) => {
    const from = stanza.attrs.from as string;
    const req = stanza.getChild("req", NS_SD)!;
    thing.requests.push(stanza);
    const caller = bareOf(String(from));
    let nodes = req.getChildren("node").map((n) => n.attrs.nodeId as string);
    let fields = req.getChildren("field").map((f) => f.attrs.name as string);
    if (caller !== thing.owner) {
      const q = xml("canRead", { xmlns: NS_PROV, jid: caller, momentary: "true" });
      for (const n of nodes) q.append(xml("node", { nodeId: n }));
      for (const f of fields) q.append(xml("field", { name: f }));
      const answer = await ask(q);
      if (answer.attrs.result !== "true") return errorEl("forbidden", "not allowed by provisioning");
      // XEP-0324 §3.3: use the narrowed lists of the answer.
      const allowedNodes = answer.getChildren("node").map((n) => n.attrs.nodeId as string);
      const allowedFields = answer.getChildren("field").map((f) => f.attrs.name as string);
      if (allowedNodes.length > 0) nodes = allowedNodes;
      if (allowedFields.length > 0) fields = allowedFields;
    }
    if (nodes.length === 0) nodes = NODES;
    if (fields.length === 0) fields = FIELDS;
    const seqnr = req.attrs.seqnr;
    const fieldsEl = xml("fields", { xmlns: NS_SD, seqnr, done: "true" });
    for (const n of nodes) {
      const ts = xml("timestamp", { value: "2026-01-01T00:00:00Z" });
      for (const f of fields)
        ts.append(xml("numeric", { name: f, momentary: "true", value: "21.5", unit: "C" }));
      fieldsEl.append(xml("node", { nodeId: n }, ts));
    }
    setTimeout(() => void client.send(xml("message", { to: String(from) }, fieldsEl)), 10);
    return xml("accepted", { xmlns: NS_SD, seqnr });
  });

  client.iqCallee.set(NS_CTRL, "set", async ({ stanza }) => {
    const from = stanza.attrs.from as string;
    const set = stanza.getChild("set", NS_CTRL)!;
    thing.requests.push(stanza);
    const caller = bareOf(String(from));
    const params = set.getChildElements().filter((c) => c.name !== "node");
    let allowed = params.map((p) => p.attrs.name as string);
    let narrowed = false;
    if (caller !== thing.owner) {
      const q = xml("canControl", { xmlns: NS_PROV, jid: caller });
      for (const n of set.getChildren("node")) q.append(xml("node", { nodeId: n.attrs.nodeId }));
      for (const name of allowed) q.append(xml("parameter", { name }));
      const answer = await ask(q);
      if (answer.attrs.result !== "true") return errorEl("forbidden", "not allowed by provisioning");
      const names = answer.getChildren("parameter").map((p) => p.attrs.name as string);
      if (names.length > 0 && names.length < allowed.length) {
        allowed = names;
        narrowed = true;
      }
    }
    for (const p of params) if (allowed.includes(p.attrs.name)) thing.applied[p.attrs.name] = p.attrs.value;
    const response = xml("setResponse", { xmlns: NS_CTRL });
    // XEP-0324 §3.4: the narrowed set is echoed to the caller.
    if (narrowed) for (const name of allowed) response.append(xml("parameter", { name }));
    return response;
  });
  return thing;
}

/** Asks the provisioning service directly, as the thing would (XEP-0324 §3.1–§3.4). */
export async function askProvisioning(client: TestClient, prov: string, payload: Element): Promise<Element> {
  const result = await client.iqCaller.request(xml("iq", { type: "get", to: prov }, payload), 10_000);
  return result.getChildElements()[0]!;
}

/** The thing asks whether `jid` may read one field of it (XEP-0324 §3.3). */
export function askCanReadField(
  client: TestClient,
  prov: string,
  jid: string,
  field = "Temperature",
): Promise<Element> {
  return askProvisioning(
    client,
    prov,
    xml("canRead", { xmlns: NS_PROV, jid }, xml("field", { name: field })),
  );
}

/** Registers the thing at the registry and lets the owner claim it; resolves when the thing knows. */
export async function registerAndClaim(
  thing: TestThing,
  owner: TestClient,
  registry: string,
  serial: string,
): Promise<void> {
  const tags = [
    xml("str", { name: "MAN", value: "hanse.test" }),
    xml("str", { name: "SN", value: serial }),
    xml("str", { name: "KEY", value: `key-${serial}` }),
  ];
  await thing.client.iqCaller.request(
    xml("iq", { type: "set", to: registry }, xml("register", { xmlns: NS_DISCO }, ...tags)),
  );
  await owner.iqCaller.request(
    xml("iq", { type: "set", to: registry }, xml("mine", { xmlns: NS_DISCO }, ...tags)),
    30_000,
  );
  await until("the thing learns its owner", async () => thing.owner);
}

/** Polls `fn` until it returns something defined other than false (a condition or a value). */
export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(25);
  }
}

export function isQuestion(stanza: Element): boolean {
  if (!stanza.is("message")) return false;
  const x = stanza.getChild("x", NS_XDATA);
  return (
    x
      ?.getChildren("field")
      .some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === FORM_TYPE) ?? false
  );
}

/** The question's form fields as var → values. */
export function questionFields(message: Element): Map<string, string[]> {
  const x = message.getChild("x", NS_XDATA)!;
  return new Map(
    x.getChildren("field").map((f) => [f.attrs.var as string, f.getChildren("value").map((v) => v.text())]),
  );
}

/** A submitted answer form. `choices` are extra list fields (nodes, fields, parameters, ...). */
export function answerForm(
  key: string,
  decision: "allow" | "deny",
  scope: "caller" | "domain" | "everyone",
  choices: Record<string, string[]> = {},
  duration: "always" | "once" = "always",
): Element {
  const field = (name: string, values: string[]) =>
    xml("field", { var: name }, ...values.map((v) => xml("value", {}, v)));
  return xml(
    "x",
    { xmlns: NS_XDATA, type: "submit" },
    field("FORM_TYPE", [FORM_TYPE]),
    field("key", [key]),
    field("decision", [decision]),
    field("scope", [scope]),
    field("duration", [duration]),
    ...Object.entries(choices).map(([name, values]) => field(name, values)),
  );
}

/** The owner answers by iq set (errors reject with the condition). */
export async function answerByIq(
  owner: TestClient,
  prov: string,
  form: Element,
  timeoutMs = 30_000,
): Promise<void> {
  await owner.iqCaller.request(xml("iq", { type: "set", to: prov }, form), timeoutMs);
}

/** Asserts the promise fails with this stanza error condition. */
export async function refused(p: Promise<unknown>, condition: string): Promise<void> {
  await assert.rejects(p, (err: { condition?: string; text?: string }) => {
    assert.equal(err.condition, condition, `condition (text: ${err.text})`);
    return true;
  });
}

/** A readout request from `client` to `to`; resolves with the `fields` message or rejects. */
export async function readout(
  client: TestClient,
  to: string,
  seqnr: number,
  children: Element[] = [],
  timeoutMs = 10_000,
): Promise<Element> {
  await client.iqCaller.request(
    xml(
      "iq",
      { type: "get", to },
      xml("req", { xmlns: NS_SD, seqnr: String(seqnr), momentary: "true" }, ...children),
    ),
    timeoutMs,
  );
  return client.nextStanza(
    (s) => s.is("message") && s.getChild("fields", NS_SD)?.attrs.seqnr === String(seqnr),
    timeoutMs,
  );
}

/**
 * The broker's module list with the provisioning module wrapped so a test can reach the
 * owner-facing service (what ad-hoc commands and the portal use) of the broker it starts.
 */
export function modulesWithProvisioningProbe(): {
  modules: readonly Module[];
  service(): ProvisioningService;
} {
  let service: ProvisioningService | undefined;
  const probe: Module = {
    ...provisioningModule,
    async start(api) {
      await provisioningModule.start(api);
      service = api.use<ProvisioningService>("provisioning");
    },
  };
  return {
    modules: defaultModules.map((m) => (m === provisioningModule ? probe : m)),
    service() {
      if (!service) throw new Error("the provisioning module has not started");
      return service;
    },
  };
}

/** The clients a test logs in to one broker, so they can all be stopped at its end. */
export interface TestLogins {
  /** Every client logged in and not yet stopped, in login order. */
  readonly clients: TestClient[];
  /**
   * `name` (password `${name}-pw`) logged in as a good client at resource r1: roster fetched,
   * online unless `presence` is false.
   */
  login(name: string, opts?: { presence?: boolean }): Promise<TestClient>;
  /** The client `name` logged in here (the first of them), if any. */
  clientOf(name: string): TestClient | undefined;
  /** Stops every client logged in so far (errors of clients already gone are ignored). */
  stopClients(): Promise<void>;
}

/** Logins to `broker()`: a getter, so that a restart test can point them at the new broker. */
export function testLogins(broker: () => TestBroker): TestLogins {
  const clients: TestClient[] = [];
  return {
    clients,
    login(name, opts = {}) {
      return loginAs(
        async (u, resource) => {
          const client = await loginTo(broker(), u, `${u}-pw`, resource ? { resource } : {});
          clients.push(client); // before the roster and presence, so a failed login is still stopped
          return client;
        },
        name,
        { resource: "r1", presence: opts.presence ?? true },
      );
    },
    clientOf(name) {
      return clients.find((c) => c.jid?.local === name);
    },
    async stopClients() {
      await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => {})));
    },
  };
}

/** A broker with its users and their logins; `stop` ends the clients, then the broker. */
export interface ProvisioningTestBed extends TestLogins {
  readonly broker: TestBroker;
  /**
   * `name` logged in, acting as a thing of provisioning.<domain>, registered at registry.<domain>
   * (serial `sn-<name>`) and claimed by `owner`.
   */
  claimedThing(name: string, owner: TestClient): Promise<TestThing>;
  stop(): Promise<void>;
}

/** Starts a test broker with `users` (password `${name}-pw`) for a provisioning test. */
export async function startProvisioningTestBed(
  users: readonly string[],
  options: TestBrokerOptions = {},
): Promise<ProvisioningTestBed> {
  const broker = await startTestBroker(options);
  for (const name of users) await broker.addUser(name, `${name}-pw`);
  const logins = testLogins(() => broker);
  const prov = `provisioning.${broker.domain}`;
  const registry = `registry.${broker.domain}`;
  return {
    ...logins,
    broker,
    async claimedThing(name, owner) {
      const thing = actAsThing(await logins.login(name), prov);
      await registerAndClaim(thing, owner, registry, `sn-${name}`);
      return thing;
    },
    async stop() {
      await logins.stopClients();
      await broker.stop();
    },
  };
}
