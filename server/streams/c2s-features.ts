/**
 * The stream features a client stream offers after each (re)start, and the negotiation step that
 * puts it in: STARTTLS first where it is required, then SASL (and what modules allow before
 * authentication), then resource binding and what a session may use.
 * References: RFC 6120 §4.3.2 (features after each restart), §5.3.1 (mandatory-to-negotiate
 * STARTTLS), §6.3.1 (SASL mechanisms), §7.2 (bind); RFC 6121 Appendix E and RFC 3921 §3 (legacy
 * session); XEP-0198 §3 (stream management feature).
 */
import { Element } from "ltx";
import { NS } from "../xml/namespaces.ts";
import type { SaslNegotiator } from "./c2s-sasl.ts";
import { NS_SM } from "./stream-management.ts";

/** What the client may negotiate next: TLS, authentication, or a resource. */
export type NegotiationStep = "tls" | "auth" | "bind";

export interface FeatureContext {
  readonly secure: boolean;
  readonly authenticated: boolean;
  readonly requireTls: boolean;
  readonly sasl: SaslNegotiator;
  /** Features of iqs allowed before authentication (e.g. XEP-0077 registration). */
  readonly preAuthFeatures: readonly Element[];
  /** Features modules offer after authentication (roster versioning, pre-approval, …). */
  readonly sessionFeatures: readonly Element[];
}

export function c2sStreamFeatures(ctx: FeatureContext): { features: Element; step: NegotiationStep } {
  const features = new Element("stream:features");
  if (!ctx.secure) {
    const starttls = features.c("starttls", { xmlns: NS.tls });
    if (ctx.requireTls) {
      starttls.c("required"); // RFC 6120 §5.3.1
      return { features, step: "tls" };
    }
  }
  if (!ctx.authenticated) {
    ctx.sasl.addFeatures(features);
    for (const feature of ctx.preAuthFeatures) features.cnode(feature);
    return { features, step: "auth" };
  }
  features.c("bind", { xmlns: NS.bind });
  // RFC 6121 Appendix E / RFC 3921 §3: old clients still send <session/>; it is a no-op.
  features.c("session", { xmlns: NS.session }).c("optional");
  features.c("sm", { xmlns: NS_SM }); // XEP-0198 §3
  for (const feature of ctx.sessionFeatures) features.cnode(feature);
  return { features, step: "bind" };
}
