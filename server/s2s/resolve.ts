/**
 * Where to connect for a remote domain: the static route table first, then DNS SRV records
 * (`_xmpps-server._tcp` for direct TLS, `_xmpp-server._tcp` for STARTTLS), then the domain itself
 * on port 5269 (A/AAAA, resolved when connecting).
 * References: RFC 6120 §3.2 (resolution of FQDNs: SRV first, fallback to A/AAAA on 5269),
 * §3.2.1 step 5 (a single "." target means "no service"), RFC 2782 (priority and weight),
 * XEP-0368 §3 (`_xmpps-server`, direct TLS, preferred over STARTTLS at equal priority).
 */
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import type { Logger } from "../observability/logger.ts";

/** One place to try: a host (name or IP) and port, with TLS first (XEP-0368) or STARTTLS. */
export interface Target {
  readonly host: string;
  readonly port: number;
  readonly directTls: boolean;
}

export const DEFAULT_S2S_PORT = 5269;

/**
 * Parses a route table value: `"127.0.0.2:5269"`, `"[::1]:5269"`, `"host.example"` (port 5269),
 * or with `tls://` in front for direct TLS (XEP-0368). Throws with a readable message.
 */
export function parseRoute(value: string): Target {
  let rest = value.trim();
  let directTls = false;
  if (rest.startsWith("tls://")) {
    directTls = true;
    rest = rest.slice("tls://".length);
  } else if (rest.includes("://")) {
    throw new Error(`route "${value}": only tls:// may prefix an address`);
  }
  let host = rest;
  let port = DEFAULT_S2S_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (!isIP(rest)) {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0) {
      host = rest.slice(0, colon);
      port = /^\d+$/.test(rest.slice(colon + 1)) ? Number(rest.slice(colon + 1)) : Number.NaN;
    }
  }
  if (!host || /[\s/]/.test(host)) throw new Error(`route "${value}": no host`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`route "${value}": bad port`);
  return { host, port, directTls };
}

export interface ResolverOptions {
  /** Static routes by domain (already normalised). */
  readonly routes: Readonly<Record<string, string>>;
  /** false = only the route table: no DNS query ever leaves the machine (tests). */
  readonly dns: boolean;
  readonly log: Logger;
}

export class Resolver {
  private readonly routes: Map<string, Target>;
  private readonly dnsEnabled: boolean;
  private readonly log: Logger;
  private readonly dns = new dns.Resolver({ timeout: 3000, tries: 2 });

  constructor(opts: ResolverOptions) {
    this.routes = new Map(Object.entries(opts.routes).map(([d, v]) => [d, parseRoute(v)]));
    this.dnsEnabled = opts.dns;
    this.log = opts.log;
  }

  /** Adds, replaces (value) or removes (undefined) a static route at run time. */
  setRoute(domain: string, value: string | undefined): void {
    if (value === undefined) this.routes.delete(domain);
    else this.routes.set(domain, parseRoute(value));
  }

  /** Targets in the order to try them; empty when the domain cannot be reached at all. */
  async resolve(domain: string): Promise<Target[]> {
    const route = this.routes.get(domain);
    if (route) return [route];
    if (!this.dnsEnabled) return [];
    // An IP literal domain (RFC 7622 §3.2) has no SRV records.
    const bare = domain.startsWith("[") ? domain.slice(1, -1) : domain;
    if (isIP(bare)) return [{ host: bare, port: DEFAULT_S2S_PORT, directTls: false }];
    const [tls, plain] = await Promise.all([
      this.srv(`_xmpps-server._tcp.${domain}`, true),
      this.srv(`_xmpp-server._tcp.${domain}`, false),
    ]);
    if (tls === "none" && plain === "none") return []; // RFC 6120 §3.2.1: the domain says "no s2s"
    const records = [...(tls === "none" ? [] : tls), ...(plain === "none" ? [] : plain)];
    if (records.length === 0) {
      // RFC 6120 §3.2.2: no SRV records: the domain itself on the default port.
      return [{ host: domain, port: DEFAULT_S2S_PORT, directTls: false }];
    }
    return orderSrv(records);
  }

  private async srv(name: string, directTls: boolean): Promise<SrvTarget[] | "none"> {
    try {
      const records = await this.dns.resolveSrv(name);
      if (records.length === 1 && (records[0]!.name === "" || records[0]!.name === ".")) return "none";
      return records.map((r) => ({
        host: r.name,
        port: r.port,
        directTls,
        priority: r.priority,
        weight: r.weight,
      }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTFOUND" && code !== "ENODATA") this.log.debug({ name, code }, "SRV lookup failed");
      return [];
    }
  }
}

interface SrvTarget extends Target {
  readonly priority: number;
  readonly weight: number;
}

/**
 * RFC 2782: lowest priority first; within a priority, a weighted random order. XEP-0368 §3: at
 * equal priority and weight, direct TLS first.
 */
export function orderSrv(records: readonly SrvTarget[], random: () => number = Math.random): Target[] {
  const byPriority = new Map<number, SrvTarget[]>();
  for (const r of records) byPriority.set(r.priority, [...(byPriority.get(r.priority) ?? []), r]);
  const out: Target[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = byPriority.get(priority)!.sort((a, b) => Number(b.directTls) - Number(a.directTls));
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      let pick = 0;
      if (total > 0) {
        let point = random() * total;
        pick = pool.length - 1;
        for (let i = 0; i < pool.length; i++) {
          point -= pool[i]!.weight;
          if (point < 0) {
            pick = i;
            break;
          }
        }
      }
      const [chosen] = pool.splice(pick, 1);
      out.push({ host: chosen!.host, port: chosen!.port, directTls: chosen!.directTls });
    }
  }
  return out;
}
