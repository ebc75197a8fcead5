/**
 * One client-to-server XMPP stream over TLS: TCP connect, STARTTLS (required) or direct TLS, the
 * stream header and features, stream restarts, and reading top-level elements either one at a
 * time while negotiating (`take`) or as a flow once the session is up (`deliverTo`).
 *
 * Plaintext is never allowed: a server that does not offer STARTTLS is refused before anything
 * but the stream header is sent (RFC 6120 §5.3.1, §13.8). The server certificate is verified
 * against `ca` (or the system store) with the domain as the name unless the caller explicitly
 * turns verification off (RFC 6120 §13.7.2, RFC 6125).
 *
 * Inbound bytes go through the same strict, size-limited StreamParser the server uses, so a hostile
 * or broken server cannot make the device buffer more than one stanza's worth of input.
 *
 * References: RFC 6120 §4.2-§4.4 (opening, restarting, closing), §4.3.2 (features), §4.9 (stream
 * errors), §5.4 (STARTTLS), §13.7 (certificates); XEP-0368 (direct TLS, ALPN "xmpp-client").
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { Element } from "ltx";
import { StreamError, type StreamErrorCondition } from "../../server/xml/errors.ts";
import { NS } from "../../server/xml/namespaces.ts";
import { STREAM_CLOSE, serializeStanza, streamHeader } from "../../server/xml/serialize.ts";
import { StreamParser } from "../../server/xml/stream-parser.ts";
import { ClientClosedError, RequestTimeoutError } from "./errors.ts";
import type { ServerAddress } from "./options.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Log = (level: LogLevel, msg: string, data?: Record<string, unknown>) => void;

export interface ConnectionOptions extends ServerAddress {
  /** Limit for each negotiation step (connect, TLS, one reply). */
  readonly stepTimeoutMs: number;
  /** Largest inbound stanza in bytes (the parser's limit; 256 KiB by default). */
  readonly maxStanzaBytes?: number;
  readonly log: Log;
}

/** How long a graceful close waits for the server's `</stream:stream>` (RFC 6120 §4.4). */
const CLOSE_WAIT_MS = 2000;

const KNOWN_STREAM_CONDITIONS = new Set<string>([
  "bad-format",
  "bad-namespace-prefix",
  "conflict",
  "connection-timeout",
  "host-gone",
  "host-unknown",
  "improper-addressing",
  "internal-server-error",
  "invalid-from",
  "invalid-namespace",
  "invalid-xml",
  "not-authorized",
  "not-well-formed",
  "policy-violation",
  "remote-connection-failed",
  "reset",
  "resource-constraint",
  "restricted-xml",
  "see-other-host",
  "system-shutdown",
  "undefined-condition",
  "unsupported-encoding",
  "unsupported-feature",
  "unsupported-stanza-type",
  "unsupported-version",
]);

/** RFC 6120 §4.9.2: the condition and text of a received `<stream:error>`. */
export function readStreamError(el: Element): StreamError {
  const condition = el.getChildElements().find((c) => c.attrs.xmlns === NS.streamErrors && c.name !== "text");
  const text = el.getChildText("text", NS.streamErrors) ?? undefined;
  const name = condition?.name ?? "undefined-condition";
  // An unknown condition is treated as undefined-condition (RFC 6120 §4.9.3.21), text kept.
  return KNOWN_STREAM_CONDITIONS.has(name)
    ? new StreamError(name as StreamErrorCondition, text)
    : new StreamError("undefined-condition", text ? `${name}: ${text}` : name);
}

interface Waiter {
  readonly match: (el: Element) => boolean;
  readonly resolve: (taken: { el: Element; index: number }) => void;
  readonly reject: (err: Error) => void;
}

export class StreamConnection extends EventEmitter<{ close: [err: Error | undefined] }> {
  readonly #opts: ConnectionOptions;
  #socket: net.Socket;
  #secure = false;
  readonly #parser: StreamParser;
  #headerWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  readonly #inbox: Element[] = [];
  #waiter: Waiter | undefined;
  #deliver: ((el: Element) => void) | undefined;
  #closing: (() => void) | undefined;
  #closedError: Error | undefined;
  #closed = false;
  /** The stream features of the current stream (RFC 6120 §4.3.2). */
  features: Element | undefined;
  /** When we last wrote anything (for keepalives, RFC 6120 §4.6.1). */
  lastWriteAt = Date.now();

  private constructor(socket: net.Socket, opts: ConnectionOptions) {
    super();
    this.#opts = opts;
    this.#socket = socket;
    this.#parser = new StreamParser(
      {
        onStreamStart: () => {
          const w = this.#headerWaiter;
          this.#headerWaiter = undefined;
          w?.resolve();
        },
        onStanza: (el) => this.#onElement(el),
        onStreamEnd: () => {
          if (this.#closing) this.#closing();
          else this.destroy(new Error("the server closed the stream"));
        },
        onError: (err) => {
          // The server sent something we cannot parse or over our limits: tell it and go.
          this.#write(serializeStanza(err.toElement()) + STREAM_CLOSE);
          this.destroy(err);
        },
      },
      { contentNamespace: NS.client, ...(opts.maxStanzaBytes && { maxStanzaBytes: opts.maxStanzaBytes }) },
    );
    this.#attach(socket);
  }

  /** Connects, secures the stream and returns it with the post-TLS features read. */
  static async open(opts: ConnectionOptions): Promise<StreamConnection> {
    const host = opts.host ?? opts.domain;
    const direct = opts.tls === "direct";
    const port = opts.port ?? (direct ? 5223 : 5222);
    opts.log("debug", "connecting", { host, port, tls: direct ? "direct" : "starttls" });
    const socket = direct
      ? tls.connect({ host, port, ...tlsOptions(opts), ALPNProtocols: ["xmpp-client"] }) // XEP-0368 §3
      : net.connect({ host, port });
    const conn = new StreamConnection(socket, opts);
    try {
      await conn.#until(direct ? "secureConnect" : "connect", "connecting");
      conn.#secure = direct;
      let features = await conn.openStream();
      if (!direct) {
        // RFC 6120 §5.3.1: we insist on TLS; without <starttls/> we leave before authenticating.
        if (!features.getChild("starttls", NS.tls)) throw new Error("the server does not offer STARTTLS");
        conn.send(new Element("starttls", { xmlns: NS.tls }));
        const reply = await conn.take((el) => el.attrs.xmlns === NS.tls, "STARTTLS");
        if (reply.name !== "proceed") throw new Error("the server refused STARTTLS"); // §5.4.2.2
        await conn.#upgrade();
        features = await conn.openStream();
      }
      return conn;
    } catch (err) {
      conn.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }

  get secure(): boolean {
    return this.#secure;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The TLS socket (for channel binding, RFC 9266), once secured. */
  get tlsSocket(): tls.TLSSocket | undefined {
    return this.#secure ? (this.#socket as tls.TLSSocket) : undefined;
  }

  /**
   * Sends a stream header and waits for the server's header and features. Used for the first
   * stream and for restarts after TLS and SASL (RFC 6120 §4.3.3, §5.4.3.3, §6.4.6).
   */
  async openStream(): Promise<Element> {
    this.#parser.reset();
    this.#inbox.length = 0;
    const header = new Promise<void>((resolve, reject) => {
      this.#headerWaiter = { resolve, reject };
    });
    this.#write(
      streamHeader({ contentNamespace: NS.client, to: this.#opts.domain, version: "1.0", lang: "en" }),
    );
    await this.#withTimeout(header, "stream header");
    // RFC 6120 §4.3.2: features follow the header on version 1.0 streams.
    this.features = await this.take(
      (el) => el.name === "features" && el.attrs.xmlns === NS.stream,
      "features",
    );
    return this.features;
  }

  /** Writes a top-level element (stanza or nonza). Ignored once the connection is gone. */
  send(el: Element): void {
    this.#write(serializeStanza(el, NS.client));
  }

  /** RFC 6120 §4.6.1: a whitespace keepalive. */
  sendWhitespace(): void {
    this.#write(" ");
  }

  /** The next inbound element that matches, skipping (and keeping) the others; `index` says how many were kept before it. */
  takeWithIndex(match: (el: Element) => boolean, what: string): Promise<{ el: Element; index: number }> {
    const index = this.#inbox.findIndex(match);
    if (index >= 0) {
      const el = this.#inbox.splice(index, 1)[0]!;
      return Promise.resolve({ el, index });
    }
    if (this.#closed) return Promise.reject(this.#closedError ?? new ClientClosedError("connection closed"));
    const waiting = new Promise<{ el: Element; index: number }>((resolve, reject) => {
      this.#waiter = { match, resolve, reject };
    });
    return this.#withTimeout(waiting, what);
  }

  async take(match: (el: Element) => boolean, what: string): Promise<Element> {
    return (await this.takeWithIndex(match, what)).el;
  }

  /** Switches to flowing mode: kept elements first, then each new one as it arrives. */
  deliverTo(handler: (el: Element) => void): void {
    this.#deliver = handler;
    for (const el of this.#inbox.splice(0)) {
      if (this.#closed) return;
      handler(el);
    }
  }

  /** RFC 6120 §4.4: close our stream, wait briefly for the server to close its own, then drop. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      this.#closing = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#write(STREAM_CLOSE);
    await done;
    this.destroy();
  }

  /** Drops the connection at once; `err` says why (undefined for a clean close). */
  destroy(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closedError = err;
    this.#socket.destroy();
    this.#parser.end();
    const failure = err ?? new ClientClosedError("connection closed");
    this.#headerWaiter?.reject(failure);
    this.#headerWaiter = undefined;
    this.#waiter?.reject(failure);
    this.#waiter = undefined;
    this.emit("close", err);
  }

  #onElement(el: Element): void {
    if (el.name === "error" && el.attrs.xmlns === NS.stream) {
      // RFC 6120 §4.9.1.1: a stream error is followed by the close of the stream.
      this.destroy(readStreamError(el));
      return;
    }
    if (this.#deliver) {
      this.#deliver(el);
      return;
    }
    const w = this.#waiter;
    if (w?.match(el)) {
      this.#waiter = undefined;
      w.resolve({ el, index: this.#inbox.length });
      return;
    }
    // Bounded by the negotiation: the server only says a few things before we are online.
    if (this.#inbox.length >= 100) {
      this.destroy(new Error("the server sent too much before the session was established"));
      return;
    }
    this.#inbox.push(el);
  }

  #write(data: string): void {
    if (this.#closed || !this.#socket.writable) return;
    this.lastWriteAt = Date.now();
    this.#socket.write(data);
  }

  #attach(socket: net.Socket): void {
    socket.on("data", this.#onData);
    socket.on("error", this.#onSocketError);
    socket.on("close", this.#onSocketClose);
  }

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#parser.write(chunk);
    } catch (err) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  };
  readonly #onSocketError = (err: Error): void => this.destroy(err);
  readonly #onSocketClose = (): void => this.destroy(new Error("connection lost"));

  /** RFC 6120 §5.4.3.3: TLS on the same TCP connection; the parser starts over afterwards. */
  async #upgrade(): Promise<void> {
    const plain = this.#socket;
    plain.off("data", this.#onData);
    plain.off("error", this.#onSocketError);
    plain.off("close", this.#onSocketClose);
    const secured = tls.connect({ socket: plain, ...tlsOptions(this.#opts) });
    this.#socket = secured;
    this.#attach(secured);
    await this.#until("secureConnect", "TLS handshake");
    this.#secure = true;
  }

  #until(event: "connect" | "secureConnect", what: string): Promise<void> {
    const socket = this.#socket;
    return this.#withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once(event, resolve);
        socket.once("error", reject);
        this.once("close", (err) => reject(err ?? new ClientClosedError("connection closed")));
      }),
      what,
    );
  }

  #withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
    const ms = this.#opts.stepTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new RequestTimeoutError(what, ms);
        reject(err);
        this.destroy(err);
      }, ms);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}

function tlsOptions(opts: ConnectionOptions): tls.ConnectionOptions {
  return {
    // RFC 6120 §13.7.2.1: the certificate must be valid for the XMPP domain, whatever host we dialled.
    servername: opts.domain,
    rejectUnauthorized: opts.rejectUnauthorized ?? true,
    ...(opts.ca !== undefined && { ca: opts.ca as string | Buffer | (string | Buffer)[] }),
    minVersion: "TLSv1.2", // RFC 7525 §3.1.1 (as updated by RFC 8996)
  };
}
