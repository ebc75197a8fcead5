/**
 * A minimal XMPP client state machine for load generation: raw socket, stream header, STARTTLS
 * (or none, for plain-TCP sessions), SASL SCRAM-SHA-256 (SCRAM-SHA-1 if that is all the server
 * offers), resource binding, initial presence, then chat messages or sensor-data readouts. It
 * parses only what it needs with indexOf (feature lists, the SASL payloads, the bound JID, then
 * <body> texts, or the start tags of readout answers), never builds a DOM, and writes whole
 * batches with one socket write. It trusts the server under test (no
 * certificate checks: every bench server has a self-signed certificate).
 * References: RFC 6120 §4.3 (stream negotiation), §5.4 (STARTTLS), §6.4 (SASL), §7 (binding);
 * RFC 6121 §4.2 (initial presence); XEP-0323 §3.1 (readout answers: fields with done).
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { SCRAM_MECHANISM, ScramClient, type ScramHash } from "./scram-client.ts";

export interface SessionSpec {
  readonly host: string;
  readonly port: number;
  /** The XMPP domain (stream 'to', SNI). */
  readonly domain: string;
  readonly username: string;
  readonly password: string;
  readonly resource: string;
  /** STARTTLS before authenticating; false = SCRAM over plain TCP (the server must allow it). */
  readonly tls: boolean;
  /** Source address (spreads ports when one address cannot hold all connections). */
  readonly localAddress?: string;
  /** Send the initial available presence after binding (RFC 6121 §4.2). */
  readonly presence: boolean;
}

export interface SessionHandler {
  ready(session: BenchSession): void;
  failed(session: BenchSession, err: Error): void;
  /** A <body> arrived in the ready state; `stamp` is the number after a leading "T" (NaN if none). */
  body?(session: BenchSession, stamp: number): void;
  /**
   * Readout mode (instead of bodies): readout `seqnr` ended, with `done` fields (ok) or an iq
   * error for request id `q<seqnr>` (not ok).
   */
  readout?(session: BenchSession, seqnr: number, ok: boolean): void;
}

type State = "features" | "proceed" | "challenge" | "success" | "bind" | "ready" | "dead";

const NS_STREAM = "http://etherx.jabber.org/streams";
const SETUP_TIMEOUT_MS = 60_000;

/** Microseconds on the monotonic clock; comparable across worker threads of one process. */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

export class BenchSession {
  readonly spec: SessionSpec;
  /** Free for the owner (pair index, partner, in-flight count). */
  partner: BenchSession | undefined;
  inflight = 0;
  jid = "";
  mechanism = "";
  readonly startedUs = nowUs();
  readyUs = 0;
  private socket: Socket;
  private state: State = "features";
  private secure = false;
  private authenticated = false;
  private buf = "";
  private scram: ScramClient | undefined;
  private readonly handler: SessionHandler;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  private setupTimer: NodeJS.Timeout | undefined;

  constructor(spec: SessionSpec, handler: SessionHandler) {
    this.spec = spec;
    this.handler = handler;
    this.socket = netConnect({
      host: spec.host,
      port: spec.port,
      ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
    });
    this.socket.setNoDelay(true);
    this.attach(this.socket);
    this.socket.once("connect", () => this.openStream());
    // A server that stops answering must not hang the scenario.
    this.setupTimer = setTimeout(
      () => this.fail(new Error(`no session after ${SETUP_TIMEOUT_MS} ms`)),
      SETUP_TIMEOUT_MS,
    );
  }

  get isReady(): boolean {
    return this.state === "ready";
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  write(data: string): void {
    if (this.state !== "dead") this.socket.write(data);
  }

  /** Closes the stream politely and drops the transport at once (no lingering for the answer). */
  close(): void {
    if (this.state === "dead") return;
    this.state = "dead";
    clearTimeout(this.setupTimer);
    this.socket.off("data", this.onData);
    this.socket.end("</stream:stream>");
    this.socket.destroy();
  }

  private attach(socket: Socket): void {
    socket.on("data", this.onData);
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => {
      if (this.state !== "dead") this.fail(new Error(`closed by the server in state ${this.state}`));
    });
  }

  private fail(err: Error): void {
    if (this.state === "dead") return;
    this.state = "dead";
    clearTimeout(this.setupTimer);
    this.socket.destroy();
    this.handler.failed(this, err);
  }

  private openStream(): void {
    this.buf = "";
    this.state = "features";
    this.socket.write(
      `<?xml version='1.0'?><stream:stream to='${this.spec.domain}' xmlns='jabber:client' ` +
        `xmlns:stream='${NS_STREAM}' version='1.0'>`,
    );
  }

  private receive(chunk: Buffer): void {
    // Everything the bench servers send us is ASCII; latin1 is the cheapest exact decoding.
    this.buf += chunk.toString("latin1");
    try {
      if (this.state === "ready") this.scanReady();
      else this.negotiate();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Takes the text up to and including `marker`, or undefined if it has not arrived yet. */
  private take(marker: string): string | undefined {
    const at = this.buf.indexOf(marker);
    if (at < 0) return undefined;
    const end = at + marker.length;
    const text = this.buf.slice(0, end);
    this.buf = this.buf.slice(end);
    return text;
  }

  private negotiate(): void {
    for (;;) {
      if (this.buf.includes("<failure") || this.buf.includes("<stream:error")) {
        throw new Error(`server refused in state ${this.state}: ${this.buf.slice(0, 300)}`);
      }
      switch (this.state) {
        case "features": {
          const features = this.take("</stream:features>");
          if (features === undefined) return;
          this.onFeatures(features);
          break;
        }
        case "proceed": {
          if (this.take("<proceed") === undefined) return;
          this.startTls();
          return;
        }
        case "challenge": {
          const text = this.take("</challenge>");
          if (text === undefined) return;
          const payload = text.slice(text.lastIndexOf(">", text.length - 13) + 1, text.length - 12);
          const serverFirst = Buffer.from(payload, "base64").toString("utf8");
          const response = Buffer.from(this.scram!.final(serverFirst)).toString("base64");
          this.socket.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${response}</response>`);
          this.state = "success";
          break;
        }
        case "success": {
          const at = this.buf.indexOf("<success");
          if (at < 0) return;
          const close = this.buf.indexOf(">", at);
          if (close < 0) return;
          let end: number;
          let payload = "";
          if (this.buf[close - 1] === "/") end = close + 1;
          else {
            const endTag = this.buf.indexOf("</success>", close);
            if (endTag < 0) return;
            payload = this.buf.slice(close + 1, endTag);
            end = endTag + 10;
          }
          this.buf = this.buf.slice(end);
          if (payload && !this.scram!.verify(Buffer.from(payload, "base64").toString("utf8"))) {
            throw new Error("the server's SCRAM signature is wrong");
          }
          this.authenticated = true;
          this.scram = undefined;
          this.openStream(); // RFC 6120 §6.4.6
          return;
        }
        case "bind": {
          const at = this.buf.indexOf("</jid>");
          if (at < 0) return;
          const start = this.buf.lastIndexOf("<jid>", at);
          this.jid = this.buf.slice(start + 5, at);
          const iqEnd = this.buf.indexOf("</iq>", at);
          if (iqEnd < 0) return;
          this.buf = this.buf.slice(iqEnd + 5);
          this.state = "ready";
          this.readyUs = nowUs();
          clearTimeout(this.setupTimer);
          this.setupTimer = undefined;
          if (this.spec.presence) this.socket.write("<presence/>");
          this.handler.ready(this);
          if (this.buf.length > 0 && this.state === "ready") this.scanReady();
          return;
        }
        default:
          return;
      }
    }
  }

  private onFeatures(features: string): void {
    if (this.spec.tls && !this.secure) {
      if (!features.includes("urn:ietf:params:xml:ns:xmpp-tls")) throw new Error("no STARTTLS offered");
      this.socket.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      this.state = "proceed";
      return;
    }
    if (!this.authenticated) {
      let hash: ScramHash;
      if (features.includes(">SCRAM-SHA-256<")) hash = "sha256";
      else if (features.includes(">SCRAM-SHA-1<")) hash = "sha1";
      else throw new Error(`no SCRAM mechanism offered: ${features.slice(0, 400)}`);
      this.mechanism = SCRAM_MECHANISM[hash];
      this.scram = new ScramClient(hash, this.spec.username, this.spec.password);
      const first = Buffer.from(this.scram.first()).toString("base64");
      this.socket.write(
        `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${this.mechanism}'>${first}</auth>`,
      );
      this.state = "challenge";
      return;
    }
    this.socket.write(
      `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>` +
        `<resource>${this.spec.resource}</resource></bind></iq>`,
    );
    this.state = "bind";
  }

  private startTls(): void {
    const plain = this.socket;
    plain.off("data", this.onData);
    plain.removeAllListeners("error");
    plain.removeAllListeners("close");
    this.buf = "";
    const secured = tlsConnect({
      socket: plain,
      servername: this.spec.domain,
      rejectUnauthorized: false,
    });
    this.socket = secured;
    this.attach(secured);
    secured.once("secureConnect", () => {
      this.secure = true;
      this.openStream(); // RFC 6120 §5.4.3.3
    });
  }

  private scanReady(): void {
    if (this.handler.readout) this.scanReadouts(this.handler.readout);
    else this.scanBodies();
  }

  /**
   * Ready state, readout mode: only start tags are read. XEP-0323 §3.1: `<fields … done='true'>`
   * ends readout `seqnr`; §3.7: an `<iq type='error' id='q<seqnr>'>` ends it as refused.
   */
  private scanReadouts(done: NonNullable<SessionHandler["readout"]>): void {
    const buf = this.buf;
    let pos = 0;
    for (;;) {
      const fields = buf.indexOf("<fields", pos);
      const iq = buf.indexOf("<iq", pos);
      const open = fields < 0 ? iq : iq < 0 ? fields : Math.min(fields, iq);
      if (open < 0) {
        pos = Math.max(pos, buf.length - 7); // a partial "<fields" at the end
        break;
      }
      const end = buf.indexOf(">", open);
      if (end < 0) {
        pos = open;
        break;
      }
      const tag = buf.slice(open, end);
      if (open === fields) {
        if (/\sdone=["']true["']/.test(tag)) done(this, Number(/\sseqnr=["'](\d+)/.exec(tag)?.[1]), true);
      } else if (/\stype=["']error["']/.test(tag)) {
        const id = /\sid=["']q(\d+)/.exec(tag)?.[1];
        if (id) done(this, Number(id), false);
      }
      pos = end + 1;
    }
    this.buf = pos > 0 ? buf.slice(pos) : buf;
  }

  /** Ready state: every <body> is one delivered message; the rest (presence echoes) is skipped. */
  private scanBodies(): void {
    const buf = this.buf;
    let pos = 0;
    for (;;) {
      const open = buf.indexOf("<body", pos);
      if (open < 0) {
        // Keep a possible partial "<body" at the end.
        pos = Math.max(pos, buf.length - 5);
        break;
      }
      const close = buf.indexOf("</body>", open);
      if (close < 0) {
        pos = open;
        break;
      }
      const text = buf.indexOf(">", open) + 1;
      const stamp =
        buf.charCodeAt(text) === 84 /* T */ ? Number.parseFloat(buf.slice(text + 1, close)) : Number.NaN;
      this.handler.body?.(this, stamp);
      pos = close + 7;
    }
    this.buf = pos > 0 ? buf.slice(pos) : buf;
  }
}
