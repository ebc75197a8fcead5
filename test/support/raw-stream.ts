/**
 * A tiny raw XMPP client for adversarial tests: it writes whatever bytes a test gives it and keeps
 * everything the server sends, so a test can look for exact stream errors and for the moment the
 * server closes the connection. It can do the ordinary steps itself (stream header, STARTTLS,
 * SASL PLAIN or SCRAM, resource binding) so bad input can also be sent after authentication.
 *
 * Like xmpp-client.ts, this file must not import server code: it is the other side of the
 * conversation. It recognises the server's replies with regular expressions, which is enough
 * for a test that controls both the question and the expected answer.
 *
 * References: RFC 6120 §4.2 (stream header), §4.9 (stream errors), §5.4 (STARTTLS), §6.4 (SASL),
 * §7.6 (resource binding); RFC 4616 (PLAIN); RFC 5802 (SCRAM).
 */
import net from "node:net";
import { StringDecoder } from "node:string_decoder";
import tls from "node:tls";
import { ScramClient } from "./xmpp-client.ts";

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** `<stream:error><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`, either quote style. */
export const STREAM_ERROR = /<stream:error>\s*<([a-z-]+)\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']/;

export interface StreamHeaderOptions {
  /** The `to` attribute; omitted when null. Default "localhost". */
  readonly to?: string | null;
  /** The `version` attribute; omitted when null. Default "1.0". */
  readonly version?: string | null;
  /** The default (content) namespace. Default jabber:client. */
  readonly xmlns?: string;
  /** The namespace bound to the `stream` prefix. Default the RFC 6120 stream namespace. */
  readonly streamNs?: string;
  /** Prepend `<?xml version='1.0'?>` (default true). */
  readonly xmlDecl?: boolean;
}

/** RFC 6120 §4.2: an initial stream header as a client writes it. */
export function streamHeader(opts: StreamHeaderOptions = {}): string {
  const to = opts.to === undefined ? "localhost" : opts.to;
  const version = opts.version === undefined ? "1.0" : opts.version;
  let s = opts.xmlDecl === false ? "" : "<?xml version='1.0'?>";
  s += `<stream:stream xmlns='${opts.xmlns ?? "jabber:client"}' xmlns:stream='${opts.streamNs ?? NS_STREAMS}'`;
  if (to !== null) s += ` to='${to}'`;
  if (version !== null) s += ` version='${version}'`;
  return `${s} xml:lang='en'>`;
}

export interface RawConnectOptions {
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Direct TLS (XEP-0368) trusting this CA; plain TCP when absent. */
  readonly tls?: { readonly ca: string | Buffer; readonly servername?: string };
}

export interface RawLoginOptions extends RawConnectOptions {
  /** CA for STARTTLS (plain port) or direct TLS. */
  readonly ca: string | Buffer;
  /** The XMPP domain (also the TLS server name). Default "localhost". */
  readonly domain?: string;
  readonly username: string;
  readonly password: string;
  readonly mechanism?: RawMechanism;
  /** Resource to request; the server picks one when absent. */
  readonly resource?: string;
  /** Stop after SASL (the stream is restarted and features read) without binding a resource. */
  readonly bind?: boolean;
}

export type RawMechanism = "PLAIN" | "SCRAM-SHA-1" | "SCRAM-SHA-256";

/** Milliseconds a step waits for the server unless told otherwise. */
const DEFAULT_TIMEOUT_MS = 5000;

const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/'/g, "&apos;");

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

export class RawStream {
  socket: net.Socket;
  /** Everything received so far, decoded as UTF-8, across STARTTLS. */
  text = "";
  /** Where the next waitFor() starts looking; a match moves it past the match. */
  cursor = 0;
  /** Bytes handed to write() that the socket accepted. */
  bytesWritten = 0;
  /** The server sent FIN (or the transport ended). */
  ended = false;
  /** The socket is fully closed. */
  closed = false;
  /** Socket errors seen (EPIPE, ECONNRESET, ... when the server closes while we write). */
  readonly errors: Error[] = [];
  /** The JID the server bound, after bind(). */
  jid = "";
  private decoder = new StringDecoder("utf8");
  private readonly wakers = new Set<() => void>();
  private readonly onData = (chunk: Buffer): void => {
    this.text += this.decoder.write(chunk);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    this.errors.push(err);
    this.wake();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.ended = true;
    this.wake();
  };

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Opens a TCP connection (or a direct TLS one) and resolves once it is established. */
  static connect(opts: RawConnectOptions): Promise<RawStream> {
    const host = opts.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      const socket = opts.tls
        ? tls.connect({
            port: opts.port,
            host,
            ca: opts.tls.ca,
            servername: opts.tls.servername ?? "localhost",
          })
        : net.connect({ port: opts.port, host });
      const ready = opts.tls ? "secureConnect" : "connect";
      const fail = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.once("error", fail);
      socket.once(ready, () => {
        socket.off("error", fail);
        socket.setNoDelay(true);
        resolve(new RawStream(socket));
      });
    });
  }

  /**
   * Connects, negotiates STARTTLS (plain port) and SASL, and binds a resource unless `bind` is
   * false. Leaves the cursor after the last answer.
   */
  static async login(opts: RawLoginOptions): Promise<RawStream> {
    const domain = opts.domain ?? "localhost";
    const raw = await RawStream.connect(opts);
    try {
      let features = await raw.open({ to: domain });
      if (!opts.tls) {
        if (!features.includes(`xmlns="${NS_TLS}"`) && !features.includes(`xmlns='${NS_TLS}'`)) {
          throw new Error(`STARTTLS not offered: ${features}`);
        }
        await raw.startTls({ ca: opts.ca, servername: domain });
        features = await raw.open({ to: domain });
      }
      await raw.authenticate(opts.username, opts.password, opts.mechanism ?? "PLAIN");
      features = await raw.open({ to: domain });
      if (opts.bind !== false) {
        if (!/<bind\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-bind["']/.test(features)) {
          throw new Error(`resource binding not offered: ${features}`);
        }
        await raw.bind(opts.resource);
      }
      return raw;
    } catch (err) {
      raw.destroy();
      throw err;
    }
  }

  /** Whether the stream can still be written to. */
  get writable(): boolean {
    return !this.closed && !this.socket.destroyed && this.socket.writable;
  }

  /**
   * Writes bytes. Resolves true once the socket took them, false when it could not (the server
   * closed the connection: EPIPE, ECONNRESET). Never rejects: adversarial tests expect that.
   */
  send(data: string | Uint8Array): Promise<boolean> {
    if (!this.writable) return Promise.resolve(false);
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    return new Promise((resolve) => {
      this.socket.write(bytes, (err) => {
        if (err) {
          resolve(false);
          return;
        }
        this.bytesWritten += bytes.length;
        resolve(true);
      });
    });
  }

  /**
   * Writes `data` in chunks of `chunkSize` bytes, letting the event loop turn between chunks (so
   * a server in this process reads as we go), and stops early once the server has closed, a
   * write fails or `stopWhen()` holds. Returns the number of bytes written.
   */
  async sendInChunks(
    data: string | Uint8Array,
    chunkSize: number,
    stopWhen: () => boolean = () => false,
  ): Promise<number> {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let sent = 0;
    while (sent < bytes.length) {
      if (!this.writable || this.ended || stopWhen()) break;
      const chunk = bytes.subarray(sent, Math.min(bytes.length, sent + chunkSize));
      if (!(await this.send(chunk))) break;
      sent += chunk.length;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return sent;
  }

  /** Text received after the cursor. */
  get unread(): string {
    return this.text.slice(this.cursor);
  }

  /**
   * Waits until the text after the cursor matches `pattern`, then moves the cursor past the
   * match. Rejects after `timeoutMs`, or at once when the connection closed without a match.
   */
  waitFor(pattern: RegExp, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RegExpExecArray> {
    const re = new RegExp(pattern.source, pattern.flags.replace("g", ""));
    return this.until(
      () => {
        const m = re.exec(this.unread);
        if (!m) return undefined;
        this.cursor += m.index + m[0].length;
        return m;
      },
      timeoutMs,
      `${pattern}`,
    );
  }

  /** Resolves once the connection is fully closed; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    return this.until(
      () => (this.closed ? true : undefined),
      timeoutMs,
      "the connection to close",
      false,
    ).then(() => undefined);
  }

  /** Waits for a stream error (RFC 6120 §4.9.2) after the cursor; returns its condition and text. */
  async streamError(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ condition: string; text: string }> {
    const m = await this.waitFor(STREAM_ERROR, timeoutMs);
    const rest = /^[\s\S]*?<\/stream:error>/.exec(this.unread);
    const text = /<text[^>]*>([^<]*)<\/text>/.exec(rest?.[0] ?? "")?.[1] ?? "";
    return { condition: m[1]!, text };
  }

  /**
   * Sends an initial stream header (or `header` verbatim) and waits for the server's header and
   * `<stream:features>`. Returns the features element's text.
   */
  async open(header: StreamHeaderOptions | string = {}, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    await this.send(typeof header === "string" ? header : streamHeader(header));
    await this.waitFor(/<stream:stream\b[^>]*>/, timeoutMs);
    const m = await this.waitFor(/<stream:features\b[^>]*?(?:\/>|>[\s\S]*?<\/stream:features>)/, timeoutMs);
    return m[0];
  }

  /** RFC 6120 §5.4.2: `<starttls/>`, `<proceed/>`, then the TLS handshake on the same socket. */
  async startTls(
    opts: { ca: string | Buffer; servername?: string },
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<void> {
    await this.send(`<starttls xmlns='${NS_TLS}'/>`);
    await this.waitFor(/<proceed\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-tls["']\s*\/>/, timeoutMs);
    await this.upgrade(opts, timeoutMs);
  }

  /** The client side of the TLS handshake on the current socket (after `<proceed/>`). */
  async upgrade(
    opts: { ca: string | Buffer; servername?: string },
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<void> {
    const plain = this.socket;
    this.detach(plain);
    this.resetDecoder();
    const errorsBefore = this.errors.length;
    let secured = false;
    const secure = tls.connect({ socket: plain, ca: opts.ca, servername: opts.servername ?? "localhost" });
    secure.once("secureConnect", () => {
      secured = true;
      this.wake();
    });
    this.socket = secure;
    this.attach(secure);
    await this.until(
      () => {
        if (secured) return true;
        if (this.errors.length > errorsBefore) throw this.errors[this.errors.length - 1]!;
        return undefined;
      },
      timeoutMs,
      "the TLS handshake",
    );
  }

  /**
   * RFC 6120 §6.4: authenticates with PLAIN (initial response) or SCRAM and waits for
   * `<success/>`. The caller restarts the stream (open()) afterwards.
   */
  async authenticate(
    username: string,
    password: string,
    mechanism: RawMechanism = "PLAIN",
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<void> {
    const answer =
      /<(challenge|success|failure)\s+xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\s*(?:\/>|>([\s\S]*?)<\/\1>)/;
    const failed = (m: RegExpExecArray): Error => new Error(`SASL ${m[1]}: ${m[2] ?? ""}`);
    if (mechanism === "PLAIN") {
      await this.send(
        `<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${b64(`\0${username}\0${password}`)}</auth>`,
      );
      const outcome = await this.waitFor(answer, timeoutMs);
      if (outcome[1] !== "success") throw failed(outcome);
    } else {
      const scram = new ScramClient({ mechanism, username, password });
      await this.send(`<auth xmlns='${NS_SASL}' mechanism='${mechanism}'>${b64(scram.clientFirst())}</auth>`);
      const challenge = await this.waitFor(answer, timeoutMs);
      if (challenge[1] !== "challenge") throw failed(challenge);
      const serverFirst = Buffer.from(challenge[2] ?? "", "base64").toString("utf8");
      await this.send(`<response xmlns='${NS_SASL}'>${b64(await scram.clientFinal(serverFirst))}</response>`);
      const outcome = await this.waitFor(answer, timeoutMs);
      if (outcome[1] !== "success") throw failed(outcome);
      // RFC 5802 §5.1: check the server signature before trusting the session.
      scram.verifyServerFinal(Buffer.from(outcome[2] ?? "", "base64").toString("utf8"));
    }
    // The server restarts its stream after <success/> (RFC 6120 §6.4.6); so do we.
    this.resetDecoder();
  }

  /** RFC 6120 §7.6: binds a resource and remembers the full JID the server assigned. */
  async bind(resource?: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    const inner = resource === undefined ? "" : `<resource>${escapeXml(resource)}</resource>`;
    await this.send(`<iq type='set' id='raw-bind'><bind xmlns='${NS_BIND}'>${inner}</bind></iq>`);
    const m = await this.waitFor(/<iq\b[^>]*\bid=["']raw-bind["'][^>]*>[\s\S]*?<\/iq>/, timeoutMs);
    const jid = /<jid>([^<]+)<\/jid>/.exec(m[0])?.[1];
    if (!jid) throw new Error(`resource binding failed: ${m[0]}`);
    this.jid = jid;
    return jid;
  }

  /** Sends `</stream:stream>` (RFC 6120 §4.4) and waits for the connection to close. */
  async closeStream(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.send("</stream:stream>");
    await this.waitClosed(timeoutMs);
  }

  /** Drops the connection at once (test cleanup). */
  destroy(): void {
    this.socket.destroy();
  }

  private resetDecoder(): void {
    this.text += this.decoder.end();
    this.decoder = new StringDecoder("utf8");
  }

  private attach(socket: net.Socket): void {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("error", this.onError);
    socket.on("close", this.onClose);
  }

  private detach(socket: net.Socket): void {
    socket.off("data", this.onData);
    socket.off("end", this.onEnd);
    socket.off("error", this.onError);
    socket.off("close", this.onClose);
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /**
   * Resolves with check()'s first defined value, re-checking on every socket event. Rejects
   * after `timeoutMs`, or when the connection has closed and `failOnClose` is set.
   */
  private until<T>(
    check: () => T | undefined,
    timeoutMs: number,
    what: string,
    failOnClose = true,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void): void => {
        this.wakers.delete(wake);
        clearTimeout(timer);
        fn();
      };
      const wake = (): void => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          finish(() => reject(err));
          return;
        }
        if (value !== undefined) finish(() => resolve(value));
        else if (failOnClose && this.closed) {
          finish(() =>
            reject(new Error(`connection closed while waiting for ${what}; received: ${this.tail()}`)),
          );
        }
      };
      timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${this.tail()}`),
            ),
          ),
        timeoutMs,
      );
      this.wakers.add(wake);
      wake();
    });
  }

  private tail(): string {
    const s = this.unread;
    return s.length > 600 ? `…${s.slice(-600)}` : s;
  }
}
