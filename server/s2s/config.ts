/**
 * The `[s2s]` section of the configuration: listener, security policy, timeouts and the static
 * route table. Validated with zod like the rest of the config (server/config.ts includes it).
 * References: RFC 6120 §13.7.2 (certificate checks), RFC 7590 §3 (TLS required between servers),
 * XEP-0178 (SASL EXTERNAL), XEP-0220 (dialback), XEP-0368 (direct TLS), RFC 6120 §3.2 (resolution).
 */
import { z } from "zod";
import { normalizeDomainpart } from "../jid.ts";
import { parseRoute } from "./resolve.ts";

const port = z.number().int().min(0).max(65535);

const domain = z.string().transform((d, ctx) => {
  try {
    return normalizeDomainpart(d);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

/** `"peer.test" = "127.0.0.2:5269"`; keys are domains, values parse with parseRoute. */
const routes = z.record(z.string(), z.string()).transform((table, ctx) => {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(table)) {
    try {
      parseRoute(value);
      out[normalizeDomainpart(key)] = value;
    } catch (err) {
      ctx.addIssue({ code: "custom", path: [key], message: (err as Error).message });
    }
  }
  return out;
});

export const s2sConfigSchema = z
  .object({
    /** Server-to-server listener with STARTTLS (RFC 6120 §5); 0 disables it. */
    port: port.default(5269),
    /** Direct TLS listener (XEP-0368, ALPN xmpp-server); 0 (the default) disables it. */
    tls_port: port.default(0),
    bind: z.string().default("0.0.0.0"),
    /** RFC 7590: refuse to exchange anything but STARTTLS without TLS, in both directions. */
    require_encryption: z.boolean().default(true),
    /** true = peers authenticate with certificates only (SASL EXTERNAL, XEP-0178); no dialback. */
    secure_auth: z.boolean().default(false),
    /** PEM bundle of extra trust anchors for peer certificates (added to the system roots). */
    ca_file: z.string().optional(),
    /** Only these domains may federate (empty = any). */
    allow: z.array(domain).default([]),
    /** These domains may never federate (wins over `allow`). */
    deny: z.array(domain).default([]),
    /** Seconds to connect and authenticate a link; stanzas waiting longer bounce (remote-server-timeout). */
    connect_timeout: z.number().positive().default(20),
    /** Seconds an incoming connection has to authenticate a first domain. */
    auth_timeout: z.number().positive().default(60),
    /** Seconds without stanzas after which a link is closed. */
    idle_timeout: z.number().positive().default(600),
    /** Upper bound in seconds of the back-off between attempts to reach a failing domain. */
    max_retry_delay: z.number().positive().default(60),
    /** Stanzas queued per link while it is set up; more bounce with resource-constraint. */
    max_queue: z.number().int().positive().default(1000),
    /** Look up SRV and A/AAAA records for domains not in `routes`; false = the route table only. */
    dns: z.boolean().default(true),
    /** Incoming s2s connections at once (authenticated or not). */
    max_connections: z.number().int().positive().default(1000),
    /** Bytes per second one incoming stream may send before reads pause. */
    bytes_per_second: z
      .number()
      .int()
      .positive()
      .default(10 * 1024 * 1024),
    /** Static routes, consulted before DNS: `"peer.test" = "127.0.0.2:5269"` or `"tls://host:5270"`. */
    routes: routes.default({}),
  })
  .strict()
  .prefault({});

export type S2sConfig = z.infer<typeof s2sConfigSchema>;

/** The allow/deny policy: deny wins; an empty allow list allows every other domain. */
export function federationAllowed(config: Pick<S2sConfig, "allow" | "deny">, domain: string): boolean {
  if (config.deny.includes(domain)) return false;
  return config.allow.length === 0 || config.allow.includes(domain);
}
