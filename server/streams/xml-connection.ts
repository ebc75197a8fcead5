/**
 * One XML stream over a TCP or TLS socket: parsing with limits, in-order processing, writing,
 * STARTTLS upgrade, read-rate limiting, idle timeouts and whitespace keepalives, stream errors and
 * the closing handshake. c2s and s2s streams build their protocol on top of it (s2s-out is the
 * initiating side: it writes its header first and upgrades to TLS as the client).
 * References: RFC 6120 §4.4 (closing a stream), §4.6.1 (whitespace keepalives), §4.9.1.1
 * (stream error before the header), §5.4.3.3 (TLS negotiation restarts the stream), §10.1 (in-order
 * processing), §13.12 (limits).
 *
 * Output written in one tick is coalesced into one socket write: stanzas for one session that
 * come out of one read (a batch from a chatty peer, a burst of presence) leave as one TLS record
 * and one syscall instead of one each, which saved up to a fifth of the CPU per routed message when
 * traffic is batched (docs/benchmarks.md, profiling notes). The order is kept (one buffer, one
 * writer), and everything pending is flushed before the stream is closed or upgraded to TLS.
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Element } from "ltx";
import { type TlsServerSettings, upgradeToTls } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { StreamError, type StreamErrorCondition } from "../xml/errors.ts";
import { STREAM_CLOSE, serializeStanza, streamHeader } from "../xml/serialize.ts";
import { StreamParser } from "../xml/stream-parser.ts";

export interface ConnectionLimits {
  readonly maxStanzaBytes: number;
  readonly maxDepth: number;
  readonly bytesPerSecond: number;
  /** Close the stream when the peer leaves this much unread output (it is not reading). */
  readonly maxWriteBuffer?: number;
}

export interface StreamHandler {
  /** The peer's stream header; `attrs` are its attributes (to, from, version, xml:lang, …). */
  onHeader(attrs: Record<string, string>): void | Promise<void>;
  /** A complete top-level element (stanza or nonza), in the order received. */
  onElement(el: Element): void | Promise<void>;
  /** The transport closed, for whatever reason; called exactly once. */
  onClosed(reason: string): void;
  /**
   * No bytes arrived for the idle timeout. Without this handler the stream closes with
   * connection-timeout; with it, the protocol may probe the peer first (XEP-0199 ping).
   */
  onIdle?(): void;
}

type Incoming = { kind: "header"; attrs: Record<string, string> } | { kind: "element"; el: Element };

const QUEUE_HIGH_WATER = 256;
const QUEUE_LOW_WATER = 32;
const CLOSE_GRACE_MS = 2000;

export class XmlConnection {
  socket: Socket;
  secure: boolean;
  readonly remoteAddress: string;
  readonly id: string;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly limits: ConnectionLimits;
  private readonly contentNamespace: string;
  private readonly headerXmlns: Record<string, string> | undefined;
  private handler: StreamHandler | undefined;
  private parser: StreamParser;
  private readonly queue: Incoming[] = [];
  private processing = false;
  private headerSent = false;
  private closing = false;
  private closed = false;
  /** Read pauses by cause; the socket reads only when none is set. */
  private readonly pauses = new Set<"queue" | "rate" | "tls">();
  /** Output not yet handed to the socket; flushed at the end of the tick (see writeRaw). */
  private pendingOutput = "";
  private flushScheduled = false;
  private readonly flushNow = () => this.flush();
  private tokens: number;
  private lastRefill = Date.now();
  private rateTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  private readonly onEnd = () => this.peerEnded();
  private readonly onError = (err: Error) => this.transportError(err);
  private readonly onClose = () => this.transportClosed();
  private readonly onTimeout = () => {
    if (this.handler?.onIdle) this.handler.onIdle();
    else this.streamError("connection-timeout", "no traffic for too long");
  };
  /** When the peer last sent anything (whitespace keepalives count: RFC 6120 §4.6.1). */
  lastReceivedAt = Date.now();

  constructor(
    socket: Socket,
    opts: {
      id: string;
      secure: boolean;
      contentNamespace: string;
      /** Extra prefixes declared on every header we send (s2s: `{ db: "jabber:server:dialback" }`). */
      headerXmlns?: Record<string, string>;
      limits: ConnectionLimits;
      log: Logger;
      metrics: Metrics;
    },
  ) {
    this.socket = socket;
    this.secure = opts.secure;
    this.id = opts.id;
    this.remoteAddress = socket.remoteAddress ?? "unknown";
    this.contentNamespace = opts.contentNamespace;
    this.headerXmlns = opts.headerXmlns;
    this.limits = opts.limits;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.tokens = opts.limits.bytesPerSecond;
    this.parser = this.newParser();
    this.attach(socket);
  }

  /** Starts reading; call once the protocol handler is ready. */
  start(handler: StreamHandler): void {
    this.handler = handler;
    this.socket.resume();
  }

  /** Hands the stream to another handler (XEP-0198 resumption); undefined = ignore the rest. */
  rebind(handler: StreamHandler | undefined): void {
    this.handler = handler;
  }

  get isOpen(): boolean {
    return !this.closing && !this.closed;
  }

  /** RFC 6120 §4.7: our header (a response carries an id; an initiating s2s header does not). */
  sendHeader(attrs: { from: string; to?: string; id?: string }): void {
    this.headerSent = true;
    this.writeRaw(
      streamHeader({
        from: attrs.from,
        ...(attrs.to ? { to: attrs.to } : {}),
        ...(attrs.id !== undefined ? { id: attrs.id } : {}),
        version: "1.0",
        lang: "en",
        contentNamespace: this.contentNamespace,
        ...(this.headerXmlns ? { extraXmlns: this.headerXmlns } : {}),
      }),
    );
  }

  /** Writes a stanza or nonza; returns false when the stream can no longer carry it. */
  send(el: Element): boolean {
    if (this.closing || this.closed) return false;
    this.writeRaw(serializeStanza(el));
    const max = this.limits.maxWriteBuffer ?? 16 * 1024 * 1024;
    // Backpressure counts what waits here as well as what the socket holds (UTF-16 units here,
    // bytes there: close enough for a limit in megabytes).
    const buffered = this.socket.writableLength + this.pendingOutput.length;
    if (buffered > max) {
      this.log.warn({ buffered }, "peer is not reading its stream: closing");
      this.streamError("policy-violation", "too much unread output");
    }
    return true;
  }

  /** Idle timeout: no bytes from the peer for `ms` closes the stream (connection-timeout). */
  setIdleTimeout(ms: number): void {
    this.socket.setTimeout(ms);
  }

  /** RFC 6120 §4.6.1: a whitespace ping every `ms` keeps NATs open and finds dead peers. */
  setKeepalive(ms: number): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      if (!this.closing && !this.closed) this.writeRaw(" ");
    }, ms);
    this.keepaliveTimer.unref();
  }

  /** RFC 6120 §4.9: sends the stream error (after a header if none was sent yet) and closes. */
  streamError(condition: StreamErrorCondition, text?: string): void {
    if (this.closing || this.closed) return;
    this.metrics.streamErrors.inc({ condition });
    this.log.info({ condition, text, remote: this.remoteAddress }, "stream error");
    const error = new StreamError(condition, text);
    if (!this.headerSent) this.sendHeader({ from: "", id: this.id }); // RFC 6120 §4.9.1.1
    this.writeRaw(serializeStanza(error.toElement()));
    this.close();
  }

  /** RFC 6120 §4.4: send </stream:stream>, wait briefly for the peer's, then drop the transport. */
  close(): void {
    if (this.closing || this.closed) return;
    this.closing = true;
    this.queue.length = 0;
    if (!this.headerSent) this.sendHeader({ from: "", id: this.id });
    this.writeRaw(STREAM_CLOSE);
    this.flush(); // everything written before the close goes out before the FIN
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    timer.unref();
  }

  /** RFC 6120 §6.4.6 / §5.4.3.3: after SASL success or TLS the next bytes open a new stream. */
  resetStream(): void {
    this.headerSent = false;
    this.parser = this.newParser();
  }

  /**
   * RFC 6120 §5.4.3.3: turns this plain socket into TLS (after <proceed/> is written) and restarts
   * the stream. Bytes received after <starttls/> and before the handshake are a protocol error.
   * With settings we are the TLS server; the initiating side of s2s passes its own client-side
   * upgrade instead (called with the plain socket, resolving with the connected TLS socket).
   */
  async startTls(tls: TlsServerSettings | ((plain: Socket) => Promise<TLSSocket>)): Promise<void> {
    const plain = this.socket;
    // <proceed/> (or <starttls/>) must be on the wire in the clear before the handshake starts.
    this.flush();
    this.pauses.add("tls");
    // Whatever followed <starttls/> in the clear, parsed already (queued) or still in the chunk
    // being parsed, is not part of the stream that follows the handshake: drop it unprocessed.
    this.queue.length = 0;
    this.parser.end();
    this.detach(plain);
    let secured: TLSSocket;
    try {
      secured = typeof tls === "function" ? await tls(plain) : await upgradeToTls(plain, tls);
    } catch (err) {
      this.log.info({ err: (err as Error).message, remote: this.remoteAddress }, "STARTTLS failed");
      this.transportClosed();
      throw err;
    }
    this.socket = secured;
    this.secure = true;
    this.resetStream();
    this.attach(secured);
    secured.setTimeout(plain.timeout ?? 0);
    this.pauses.delete("tls");
    this.updateFlow();
  }

  private newParser(): StreamParser {
    return new StreamParser(
      {
        onStreamStart: (attrs) => this.enqueue({ kind: "header", attrs }),
        onStanza: (el) => this.enqueue({ kind: "element", el }),
        onStreamEnd: () => this.peerClosedStream(),
        onError: (err) => this.streamError(err.condition, err.text),
      },
      {
        contentNamespace: this.contentNamespace,
        maxStanzaBytes: this.limits.maxStanzaBytes,
        maxDepth: this.limits.maxDepth,
      },
    );
  }

  private attach(socket: Socket): void {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("error", this.onError);
    socket.on("close", this.onClose);
    socket.on("timeout", this.onTimeout);
  }

  private detach(socket: Socket): void {
    socket.off("data", this.onData);
    socket.off("end", this.onEnd);
    socket.off("error", this.onError);
    socket.off("close", this.onClose);
    socket.off("timeout", this.onTimeout);
  }

  private receive(chunk: Buffer): void {
    if (this.closing || this.closed || this.pauses.has("tls")) return;
    this.lastReceivedAt = Date.now();
    this.chargeRate(chunk.length);
    this.parser.write(chunk);
  }

  /** A token bucket on bytes read: over the rate, reading pauses until the bucket refills. */
  private chargeRate(bytes: number): void {
    const now = Date.now();
    const rate = this.limits.bytesPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.lastRefill) / 1000) * rate);
    this.lastRefill = now;
    this.tokens -= bytes;
    if (this.tokens < 0 && !this.rateTimer) {
      this.pauses.add("rate");
      this.updateFlow();
      this.rateTimer = setTimeout(
        () => {
          this.rateTimer = undefined;
          this.pauses.delete("rate");
          this.updateFlow();
        },
        Math.ceil((-this.tokens / rate) * 1000),
      );
    }
  }

  private enqueue(item: Incoming): void {
    if (this.closing || this.closed) return;
    this.queue.push(item);
    if (this.queue.length > QUEUE_HIGH_WATER) {
      this.pauses.add("queue");
      this.updateFlow();
    }
    if (!this.processing) void this.drain();
  }

  /** RFC 6120 §10.1: stanzas from one stream are processed in the order received. */
  private async drain(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closing && !this.closed) {
        const item = this.queue.shift()!;
        if (item.kind === "header") await this.handler?.onHeader(item.attrs);
        else await this.handler?.onElement(item.el);
        if (this.pauses.has("queue") && this.queue.length < QUEUE_LOW_WATER) {
          this.pauses.delete("queue");
          this.updateFlow();
        }
      }
    } catch (err) {
      if (err instanceof StreamError) {
        this.streamError(err.condition, err.text);
      } else {
        this.log.error({ err }, "stream handler failed");
        this.streamError("internal-server-error");
      }
    } finally {
      this.processing = false;
    }
  }

  private updateFlow(): void {
    if (this.closed) return;
    if (this.pauses.size > 0) this.socket.pause();
    else if (this.handler) this.socket.resume();
  }

  private peerClosedStream(): void {
    // RFC 6120 §4.4: answer the peer's closing tag with ours, then end the transport.
    if (this.closing) {
      this.socket.destroy();
      return;
    }
    this.close();
  }

  private peerEnded(): void {
    if (this.closed) return;
    this.flush(); // what we wrote before the peer's FIN still goes out, as an unbuffered write would
    this.socket.destroy();
  }

  private transportError(err: Error): void {
    this.log.debug({ err: err.message, remote: this.remoteAddress }, "transport error");
  }

  private transportClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.rateTimer) clearTimeout(this.rateTimer);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.queue.length = 0;
    this.pendingOutput = ""; // the transport is gone: nobody will read it
    this.handler?.onClosed(this.closing ? "closed" : "transport lost");
  }

  private writeRaw(data: string): void {
    if (this.closed || this.socket.destroyed) return;
    this.pendingOutput += data;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // nextTick runs once the current callback and the promise jobs it queued are done, so the
      // writes of one read's stanzas (across their awaits that do no I/O) are gathered.
      process.nextTick(this.flushNow);
    }
  }

  /** Hands the pending output to the socket in one write. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pendingOutput.length === 0) return;
    const data = this.pendingOutput;
    this.pendingOutput = "";
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(data);
  }
}
