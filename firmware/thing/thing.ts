/**
 * A thing: the device SDK's main class. It creates its account with an API key the first time,
 * keeps its state in a small file, registers its meta tags at the thing registry, offers its claim
 * URI and QR code, answers readouts (XEP-0323), control (XEP-0325) and, with nodes, concentrator
 * queries (XEP-0326), and asks the provisioning service (XEP-0324) before answering anyone but its
 * owner.
 * References: XEP-0077 §3.1 + XEP-0348 §2 (account creation), XEP-0347 §3.5–§3.17 (registry,
 * claim), XEP-0324 §3.1 (decisions, clearCache, friend/unfriend only from the trusted service),
 * XEP-0323, XEP-0325, XEP-0326; RFC 6121 §2.2 (roster before initial presence).
 */
import { EventEmitter } from "node:events";
import { Element } from "ltx";
import type { ControlParameter } from "../../extensions/control/index.ts";
import type { NodeRef } from "../../extensions/sensor-data/index.ts";
import { decodeFriendship, encodeClearCacheResponse, NS_PROVISIONING } from "../../provisioning/protocol.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { NS_DISCOVERY } from "../../thing-registry/protocol.ts";
import { renderQr } from "../../thing-registry/qr.ts";
import { registerAccount, XmppClient, type XmppClientOptions } from "../xmpp/client.ts";
import type { Log } from "../xmpp/connection.ts";
import { type ServerAddress, serverAddressOf } from "../xmpp/options.ts";
import { type ApiKeyCredentials, randomPassword, randomUsername, signedRegistration } from "./account.ts";
import { type ConcentratorNode, startConcentratorServer } from "./concentrator-server.ts";
import { type ControlHandler, controlMessageListener, startControlServer } from "./control-server.ts";
import { AccessDecider } from "./decisions.ts";
import { discoverServices } from "./discovery.ts";
import { Friends, NS_ROSTER } from "./friends.ts";
import { type MetaTags, RegistryClient, toTags } from "./registry-client.ts";
import { bareJid, isFrom } from "./sender.ts";
import { type SensorSource, startSensorServer } from "./sensor-server.ts";
import { StateStore } from "./state.ts";

export type ThingLog = Log;

/** The broker's domain, and where to reach it (default: the domain, port 5222, STARTTLS). */
export interface ThingOptions extends ServerAddress {
  /** The JSON file holding account, owner and decision cache (created with mode 0600). */
  readonly stateFile: string;
  /** The manufacturer's API key: the first start creates the account with it (XEP-0348). */
  readonly apiKey?: ApiKeyCredentials;
  /** Or an account the operator created (servers without API keys). */
  readonly account?: { readonly username: string; readonly password: string };
  /** Prefix of the random user name (default "thing"). */
  readonly usernamePrefix?: string;
  /** Meta tags for the registry (MAN, MODEL, SN, CLASS, ...); KEY is added by the SDK. */
  readonly tags?: MetaTags;
  /** The registry's address; default: found with service discovery; false: do not register. */
  readonly registry?: string | false;
  /** The provisioning service; default: found by discovery; false: only owner and friends. */
  readonly provisioning?: string | false;
  /** Friends approved on the device itself (bare JIDs); used when there is no provisioning. */
  readonly friends?: readonly string[];
  /** Produces the fields of a readout (XEP-0323). */
  readonly sensors?: SensorSource;
  /** The control parameters and how they are applied (XEP-0325). */
  readonly control?: ControlHandler;
  /** Nodes hosted behind this JID (XEP-0326 concentrator). */
  readonly nodes?: readonly ConcentratorNode[];
  readonly resource?: string;
  readonly streamManagement?: boolean;
  readonly reconnect?: XmppClientOptions["reconnect"];
  /** Cached provisioning decisions kept (LRU; default 1000). */
  readonly decisionCacheSize?: number;
  readonly log?: ThingLog;
}

export interface ThingEvents {
  online: [];
  offline: [];
  registered: [claimUri: string];
  claimed: [owner: string];
  removed: [];
  disowned: [formerOwner: string | undefined];
  controlled: [caller: string, parameters: readonly ControlParameter[], node: NodeRef | undefined];
  error: [err: Error];
}

export class Thing extends EventEmitter<ThingEvents> {
  private store!: StateStore;
  private client!: XmppClient;
  private decider!: AccessDecider;
  private friends!: Friends;
  private registryClient!: RegistryClient;
  private sensorServer: { stop(): void } | undefined;
  private provisioningJid: string | undefined;
  private registryJid: string | undefined;
  private started = false;
  private stopping = false;

  constructor(readonly options: ThingOptions) {
    super();
  }

  /** The bare JID (after start). */
  get jid(): string | undefined {
    return this.store?.state.jid;
  }
  get owner(): string | undefined {
    return this.store?.state.owner;
  }
  get online(): boolean {
    return this.client?.online ?? false;
  }
  get provisioningService(): string | undefined {
    return this.provisioningJid;
  }
  get registryService(): string | undefined {
    return this.registryJid;
  }
  /** The connection, for applications that speak more than the SDK does. */
  get xmpp(): XmppClient {
    return this.client;
  }
  /** Decisions in the cache (persisted). */
  get cachedDecisions(): number {
    return this.decider?.cachedDecisions ?? 0;
  }

  /** The iotdisco claim URI while unclaimed (XEP-0347 §3.9), else undefined. */
  claimUri(): string | undefined {
    return this.registryClient?.claimUri();
  }

  /** The claim code as a QR code: text for a terminal, or PNG bytes. */
  async claimQr(format: "terminal"): Promise<string>;
  async claimQr(format: "png"): Promise<Buffer>;
  async claimQr(format: "terminal" | "png"): Promise<string | Buffer> {
    const uri = this.claimUri();
    if (!uri) throw new Error("the thing is not waiting to be claimed");
    return format === "png" ? (await renderQr(uri, "png")).data : (await renderQr(uri, "terminal")).data;
  }

  private log: ThingLog = (level, msg, data) => this.options.log?.(level, msg, data);

  /** Logged, and emitted as "error" only when someone listens (an unheard "error" would throw). */
  private problem(what: string, err: Error): void {
    this.log("warn", what, { error: err.message });
    if (this.listenerCount("error") > 0)
      this.emit("error", new Error(`${what}: ${err.message}`, { cause: err }));
  }

  private connection() {
    const o = this.options;
    return { ...serverAddressOf(o), log: this.log };
  }

  /** XEP-0077 + XEP-0348: the first start creates the account; later starts reuse it. */
  private async ensureAccount(): Promise<void> {
    const state = this.store.state;
    if (state.jid && state.username && state.password) return;
    const { apiKey, account, domain } = this.options;
    if (account) {
      Object.assign(state, { username: account.username, password: account.password });
      state.jid = `${account.username}@${domain}`.toLowerCase();
      await this.store.save();
      return;
    }
    if (!apiKey) throw new Error("a new thing needs an API key (or an account) to create its account");
    for (let attempt = 0; ; attempt++) {
      const fresh = !state.username;
      state.username ??= randomUsername(this.options.usernamePrefix);
      state.password ??= randomPassword();
      await this.store.save(); // on disk before the server knows it: a crash cannot orphan it
      try {
        const { username, password } = state as { username: string; password: string };
        await registerAccount(this.connection(), (query: Element) =>
          signedRegistration(query, { username, password, apiKey, to: domain }),
        );
      } catch (err) {
        const condition = (err as { condition?: string }).condition;
        // A name from an interrupted earlier start may be ours already: try it below.
        if (condition === "conflict" && !fresh) break;
        if (condition === "conflict" && attempt < 3) {
          state.username = undefined;
          continue;
        }
        // The broker limits registrations per address (a fleet behind one NAT, a load test):
        // wait and try again, backing off up to a minute, until stopped.
        if (condition === "resource-constraint" && !this.stopping) {
          const delay = Math.min(60_000, 2000 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
          this.log("info", "registration postponed by the server", { retryInMs: Math.round(delay) });
          await new Promise((resolve) => setTimeout(resolve, delay));
          if (this.stopping) throw new Error("stopped before the account was created");
          continue;
        }
        throw err;
      }
      break;
    }
    state.jid = `${state.username}@${domain}`;
    await this.store.save();
    this.log("info", "account created", { jid: state.jid });
  }

  async start(): Promise<void> {
    this.store = await StateStore.open(this.options.stateFile);
    await this.ensureAccount();
    const state = this.store.state;
    const client = new XmppClient({
      ...this.connection(),
      username: state.username!,
      password: state.password!,
      ...(this.options.resource !== undefined && { resource: this.options.resource }),
      ...(this.options.streamManagement !== undefined && { streamManagement: this.options.streamManagement }),
      ...(this.options.reconnect !== undefined && { reconnect: this.options.reconnect }),
      presence: false, // RFC 6121 §2.2: roster first, then presence (goOnline)
    });
    this.client = client;
    const send = (s: Element) => client.send(s);
    const request = (iq: Element, t?: number) => client.request(iq, t);
    const onIq = client.onIq.bind(client);

    this.friends = new Friends({
      send,
      request,
      self: () => this.jid ?? "",
      approved: new Set((this.options.friends ?? []).map(bareJid)),
      log: this.log,
    });
    this.decider = new AccessDecider({
      request,
      provisioning: () => this.provisioningJid,
      owner: () => this.store.state.owner,
      isLocalFriend: (jid) => this.friends.isLocalFriend(jid),
      cacheChanged: () => {
        this.store.state.decisions = this.decider.exportCache();
        void this.store.save().catch((err: Error) => this.problem("saving the state failed", err));
      },
      ...(this.options.decisionCacheSize !== undefined && { cacheSize: this.options.decisionCacheSize }),
    });
    this.decider.importCache(state.decisions ?? []);
    this.friends.decider = this.decider;

    onIq("set", NS_ROSTER, "query", (iq: Element) => this.friends.onRosterPush(iq));
    // XEP-0324 §3.1: clearCache only from the trusted provisioning service.
    onIq("set", NS_PROVISIONING, "clearCache", (iq: Element) => {
      if (!isFrom(iq, this.provisioningJid)) {
        throw new StanzaError("forbidden", "only the provisioning service may clear the cache");
      }
      this.decider.clear();
      return encodeClearCacheResponse();
    });

    const nodes = this.options.nodes;
    const nodeExists = nodes
      ? startConcentratorServer({ nodes, onIq, decider: this.decider }).nodeExists
      : undefined;
    if (this.options.sensors) {
      this.sensorServer = startSensorServer({
        decider: this.decider,
        source: this.options.sensors,
        send,
        onIq,
        ...(nodeExists && { nodeExists }),
        log: this.log,
      });
    }
    let controlMessages: ((m: Element) => void) | undefined;
    if (this.options.control) {
      const server = startControlServer({
        decider: this.decider,
        handler: this.options.control,
        onIq,
        ...(nodeExists && { nodeExists }),
        applied: (caller, parameters, node) => this.emit("controlled", caller, parameters, node),
        log: this.log,
      });
      controlMessages = controlMessageListener(server, this.log);
    }

    this.registryClient = new RegistryClient({
      store: this.store,
      tags: toTags(this.options.tags ?? {}),
      request,
      onIq,
      log: this.log,
      events: {
        registered: () => this.emit("registered", this.claimUri() ?? ""),
        claimed: (owner) => {
          this.decider.clear(); // the owner's rules replace whatever was decided before
          this.friends.befriend(owner); // XEP-0347 §3.9
          this.emit("claimed", owner);
        },
        removed: () => this.emit("removed"),
        disowned: (former) => {
          this.decider.clear();
          if (former) this.friends.unfriend(former);
          this.emit("disowned", former);
        },
      },
    });

    client.on("presence", (p: Element) => {
      this.friends
        .onPresence(p)
        .catch((err: Error) => this.log("warn", "presence handling failed", { error: err.message }));
    });
    client.on("message", (m: Element) => {
      this.onMessage(m);
      controlMessages?.(m);
    });
    client.on("online", ({ resumed }: { resumed: boolean }) => {
      if (!this.started) return;
      if (!resumed) this.goOnline().catch((err: Error) => this.problem("going online failed", err));
      this.emit("online");
    });
    client.on("offline", () => this.emit("offline"));
    client.on("error", (err: Error) => this.log("warn", "connection problem", { error: err.message }));

    await client.start();
    this.started = true;
    await this.goOnline();
    await this.findServices();
    try {
      await this.registryClient.start(this.registryJid);
    } catch (err) {
      // The thing still works without the registry (readout, control); it registers at next start.
      this.problem("registering at the thing registry failed", err as Error);
    }
    this.emit("online");
  }

  /** After every new session (not a resumed one): the roster, then initial presence. */
  private async goOnline(): Promise<void> {
    await this.friends.loadRoster();
    this.client.send(new Element("presence"));
  }

  private async findServices(): Promise<void> {
    const { registry, provisioning, domain } = this.options;
    const wanted: string[] = [];
    if (registry === undefined) wanted.push(NS_DISCOVERY);
    if (provisioning === undefined) wanted.push(NS_PROVISIONING);
    const found =
      wanted.length > 0
        ? await discoverServices((iq, t) => this.client.request(iq, t), domain, wanted)
        : new Map();
    this.registryJid =
      typeof registry === "string" ? registry : registry === false ? undefined : found.get(NS_DISCOVERY);
    this.provisioningJid =
      typeof provisioning === "string"
        ? provisioning
        : provisioning === false
          ? undefined
          : found.get(NS_PROVISIONING);
    this.log("info", "services", { registry: this.registryJid, provisioning: this.provisioningJid });
  }

  /** XEP-0324 §3.1: friend / unfriend recommendations, honoured only from the trusted service. */
  private onMessage(m: Element): void {
    const el = m.getChild("friend", NS_PROVISIONING) ?? m.getChild("unfriend", NS_PROVISIONING);
    if (!el || m.attrs.type === "error") return;
    if (!isFrom(m, this.provisioningJid)) return;
    try {
      const { kind, jid } = decodeFriendship(el);
      if (kind === "friend") this.friends.befriend(bareJid(jid));
      else this.friends.unfriend(bareJid(jid));
    } catch (err) {
      this.log("info", "bad friendship recommendation", { error: (err as Error).message });
    }
  }

  /** Goes offline for good (no reconnect) and writes the state. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.sensorServer?.stop();
    await this.client?.stop();
    await this.store?.flush();
  }
}
