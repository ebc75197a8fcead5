// Minimal types for the untyped xmpp.js packages that test/support/xmpp-client.ts composes.
// Only what we use is declared; see node_modules/@xmpp/* for the real surface.

declare module "@xmpp/client-core" {
  import type { EventEmitter } from "node:events";
  import type { Element } from "ltx";

  export interface JID {
    local: string;
    domain: string;
    resource: string;
    bare(): JID;
    toString(): string;
  }

  /** @xmpp/connection's Connection, as extended by @xmpp/client-core's Client. */
  export class Client extends EventEmitter {
    constructor(options: { service: string; domain: string; lang?: string; timeout?: number });
    jid: JID | null;
    status: string;
    socket: unknown;
    options: { service: string; domain: string; lang?: string };
    transports: unknown[];
    timeout: number;
    start(): Promise<JID>;
    stop(): Promise<unknown>;
    disconnect(): Promise<unknown>;
    restart(): Promise<void>;
    send(element: Element): Promise<void>;
    sendMany(elements: Element[]): Promise<void>;
    sendReceive(element: Element, timeout?: number): Promise<Element>;
    isSecure(): boolean;
    open(options: { domain: string; lang?: string }): Promise<Element>;
    write(data: string): Promise<void>;
    root: Element | null;
    Parser: new () => unknown;
    headerElement(): Element;
    header(element: Element): string;
    _status(status: string, ...args: unknown[]): void;
    _attachParser(parser: unknown): void;
    _attachSocket(socket: unknown): void;
  }

  type Child = Element | string | null | undefined | false;
  export function xml(
    name: string,
    attrs?: Record<string, string | number | undefined> | null,
    ...children: Child[]
  ): Element;
  export function jid(local: string, domain?: string, resource?: string): JID;
}

declare module "@xmpp/tcp" {
  export default function tcp(deps: { entity: unknown }): void;
}

declare module "@xmpp/tls/lib/Connection.js" {
  export default class ConnectionTLS {
    socketParameters(service: string): { port: number; host: string } | undefined;
  }
}

declare module "@xmpp/tls/lib/Socket.js" {
  import type { EventEmitter } from "node:events";
  import type { TLSSocket } from "node:tls";
  /** Wraps a tls.TLSSocket; emits "connect" after the handshake. */
  export default class Socket extends EventEmitter {
    socket: TLSSocket | null;
    secure: true;
    connect(options: import("node:tls").ConnectionOptions): void;
  }
}

declare module "@xmpp/events" {
  export function promise<T = unknown>(
    target: unknown,
    event: string,
    rejectEvent?: string | null,
    timeout?: number,
  ): Promise<T>;
}

declare module "@xmpp/middleware" {
  import type { Element } from "ltx";
  export interface Context {
    stanza: Element;
    entity: import("@xmpp/client-core").Client;
  }
  export type Middleware = (ctx: Context, next: () => Promise<unknown>) => unknown;
  export interface MiddlewareApi {
    use(fn: Middleware): Middleware;
    filter(fn: Middleware): Middleware;
  }
  export default function middleware(deps: { entity: unknown }): MiddlewareApi;
}

declare module "@xmpp/stream-features" {
  import type { Context, MiddlewareApi } from "@xmpp/middleware";
  import type { Element } from "ltx";
  export interface StreamFeatures {
    use(
      name: string,
      xmlns: string,
      handler: (ctx: Context, next: () => Promise<unknown>, feature: Element) => unknown,
    ): unknown;
  }
  export default function streamFeatures(deps: { middleware: MiddlewareApi }): StreamFeatures;
}

declare module "@xmpp/iq/caller.js" {
  import type { Element } from "ltx";
  export interface IqCaller {
    /** Sends an iq (adds an id) and resolves with the result stanza; rejects with a StanzaError. */
    request(stanza: Element, timeout?: number): Promise<Element>;
    /** Sends <iq type="get"> with `element` as payload; resolves with the payload of the result. */
    get(element: Element, to?: string, timeout?: number): Promise<Element | undefined>;
    set(element: Element, to?: string, timeout?: number): Promise<Element | undefined>;
  }
  export default function iqCaller(deps: { middleware: unknown; entity: unknown }): IqCaller;
}

declare module "@xmpp/iq/callee.js" {
  import type { Context } from "@xmpp/middleware";
  import type { Element } from "ltx";
  export type IqHandler = (
    ctx: Context,
  ) => Element | object | undefined | Promise<Element | object | undefined>;
  export interface IqCallee {
    get(ns: string, name: string, handler: IqHandler): void;
    set(ns: string, name: string, handler: IqHandler): void;
  }
  export default function iqCallee(deps: { middleware: unknown; entity: unknown }): IqCallee;
}

declare module "@xmpp/sasl" {
  import type { Client } from "@xmpp/client-core";
  export type Authenticate = (credentials: Record<string, unknown>, mechanism: string) => Promise<void>;
  export default function sasl(
    deps: { streamFeatures: unknown; saslFactory: unknown },
    onAuthenticate: (
      authenticate: Authenticate,
      mechanisms: string[],
      fast: unknown,
      entity: Client,
    ) => Promise<void>,
  ): void;
}

declare module "@xmpp/resource-binding" {
  export default function resourceBinding(
    deps: { streamFeatures: unknown; iqCaller: unknown },
    resource?: string,
  ): void;
}

declare module "@xmpp/stream-management" {
  import type { EventEmitter } from "node:events";
  export interface StreamManagement extends EventEmitter {
    enabled: boolean;
    id: string;
    inbound: number;
    outbound: number;
  }
  export default function streamManagement(deps: {
    streamFeatures: unknown;
    entity: unknown;
    middleware: unknown;
    bind2?: unknown;
    sasl2?: unknown;
  }): StreamManagement;
}

declare module "saslmechanisms" {
  export interface ClientMechanism {
    readonly name: string;
    readonly clientFirst: boolean;
    response(credentials: Record<string, unknown>): string | Promise<string>;
    challenge(challenge: string): unknown;
  }
  export default class Factory {
    use(name: string, mech: new () => ClientMechanism): this;
    create(names: string[]): ClientMechanism | null;
  }
}

declare module "sasl-scram-sha-1" {
  import type { ClientMechanism } from "saslmechanisms";

  const Mechanism: new (options?: { genNonce?: () => string }) => ClientMechanism;
  export default Mechanism;
}

declare module "@xmpp/xml" {
  import type { EventEmitter } from "node:events";
  /** Stream parser: "start" (stream header), "element" (each top-level child), "end", "error". */
  export class Parser extends EventEmitter {
    write(data: string): void;
  }
}
