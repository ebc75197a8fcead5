/**
 * SASL negotiation on a client stream: mechanism choice, challenges and responses, failures and
 * the retry limit. The stream restarts itself after success; this file only speaks SASL.
 * References: RFC 6120 §6.4 (process), §6.4.2 (initial response, empty challenge), §6.4.4 (abort),
 * §6.4.5 (retries), §6.5 (failure conditions), §6.3.10 (additional data with success).
 */
import type { TLSSocket } from "node:tls";
import { Element } from "ltx";
import { channelBindingData } from "../net/tls.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { SaslContext, SaslMechanismFactory, SaslServerMechanism } from "../sasl/mechanism.ts";
import { channelBindingTypes, checkAuthzid, findMechanism, selectMechanisms } from "../sasl/mechanisms.ts";
import { SaslFailure, StreamError } from "../xml/errors.ts";
import { NS } from "../xml/namespaces.ts";
import type { XmlConnection } from "./xml-connection.ts";

export interface SaslNegotiatorDeps {
  readonly domain: string;
  readonly requireTls: boolean;
  readonly maxAuthFailures: number;
  readonly credentials: SaslContext["credentials"];
  /** The mechanisms on offer; built once per broker with its persistent fake-credential secret. */
  readonly mechanisms?: readonly SaslMechanismFactory[];
  readonly metrics: Metrics;
  readonly log: Logger;
}

export class SaslNegotiator {
  private readonly conn: XmlConnection;
  private readonly deps: SaslNegotiatorDeps;
  private mechanism: SaslServerMechanism | undefined;
  private mechanismName = "";
  private failures = 0;

  constructor(conn: XmlConnection, deps: SaslNegotiatorDeps) {
    this.conn = conn;
    this.deps = deps;
  }

  /** The <mechanisms/> feature (and XEP-0440 channel-binding types) for the current stream. */
  addFeatures(features: Element): void {
    const ctx = this.context();
    const mechanisms = features.c("mechanisms", { xmlns: NS.sasl });
    for (const name of selectMechanisms(ctx, this.deps.mechanisms)) mechanisms.c("mechanism").t(name);
    const bindings = channelBindingTypes(ctx);
    if (bindings.length > 0) {
      // XEP-0440 §3: tell clients which channel bindings our -PLUS mechanisms accept.
      const cb = features.c("sasl-channel-binding", { xmlns: NS.saslChannelBinding });
      for (const type of bindings) cb.c("channel-binding", { type });
    }
  }

  /** Handles one element of the SASL namespace; resolves with the username once <success/> is sent. */
  async handle(el: Element): Promise<string | undefined> {
    try {
      if (el.name === "auth") return await this.start(el);
      if (el.name === "response") {
        if (!this.mechanism) throw new SaslFailure("malformed-request", "no authentication in progress");
        return await this.step(decodeBase64(el.text()));
      }
      if (el.name === "abort") throw new SaslFailure("aborted"); // RFC 6120 §6.4.4
      throw new StreamError("policy-violation", `unexpected SASL element <${el.name}/>`);
    } catch (err) {
      if (!(err instanceof SaslFailure)) throw err;
      this.fail(err);
      return undefined;
    }
  }

  private context(): SaslContext {
    const conn = this.conn;
    return {
      secure: conn.secure,
      channelBinding: (type) =>
        conn.secure ? channelBindingData(conn.socket as TLSSocket, type) : undefined,
      credentials: this.deps.credentials,
    };
  }

  private async start(el: Element): Promise<string | undefined> {
    if (!this.conn.secure && this.deps.requireTls) throw new SaslFailure("encryption-required"); // RFC 6120 §6.5.6
    const name = el.attrs.mechanism ?? "";
    const ctx = this.context();
    const factory = findMechanism(name, ctx, this.deps.mechanisms);
    if (!factory) throw new SaslFailure("invalid-mechanism", `mechanism ${name || "(none)"} is not offered`);
    this.mechanism = factory.create(ctx);
    this.mechanismName = name;
    const text = el.text();
    if (text === "") {
      // RFC 6120 §6.4.2: no initial response → an empty challenge asks for it.
      this.conn.send(new Element("challenge", { xmlns: NS.sasl }));
      return undefined;
    }
    return this.step(decodeBase64(text));
  }

  private async step(input: Buffer): Promise<string | undefined> {
    const step = await this.mechanism!.step(input);
    if (step.kind === "challenge") {
      this.conn.send(new Element("challenge", { xmlns: NS.sasl }).t(step.data.toString("base64")));
      return undefined;
    }
    checkAuthzid(step, this.deps.domain);
    this.mechanism = undefined;
    const success = new Element("success", { xmlns: NS.sasl });
    if (step.data) success.t(step.data.toString("base64")); // RFC 6120 §6.3.10
    this.conn.send(success);
    this.deps.log.info({ user: step.username, mechanism: this.mechanismName }, "authenticated");
    return step.username;
  }

  private fail(err: SaslFailure): void {
    this.mechanism = undefined;
    this.failures++;
    this.deps.metrics.authFailures.inc({ mechanism: this.mechanismName || "none", reason: err.condition });
    this.deps.log.info({ mechanism: this.mechanismName, reason: err.condition }, "authentication failed");
    const failure = new Element("failure", { xmlns: NS.sasl });
    failure.c(err.condition);
    if (err.text) failure.c("text", { "xml:lang": "en" }).t(err.text);
    this.conn.send(failure);
    // RFC 6120 §6.4.5: a configurable number of retries, then policy-violation.
    if (this.failures >= this.deps.maxAuthFailures) {
      this.conn.streamError("policy-violation", "too many failed authentication attempts");
    }
  }
}

/** RFC 4648 §4 base64; "=" alone is the empty response (RFC 6120 §6.4.2). */
function decodeBase64(text: string): Buffer {
  const trimmed = text.trim();
  if (trimmed === "=") return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) {
    throw new SaslFailure("incorrect-encoding"); // RFC 6120 §6.5.4
  }
  return Buffer.from(trimmed, "base64");
}
