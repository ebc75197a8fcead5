/**
 * `hanse simulate`: runs N simulated things against a broker and prints each one's claim URI (and
 * its QR code with --qr), then what happens to them, until SIGINT or SIGTERM. Called from
 * server/main.ts.
 * References: XEP-0347 §3.9 (claim URIs, QR codes made locally: §6.7), XEP-0348 (the API key).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { renderQr } from "../../thing-registry/qr.ts";
import { KINDS, type SimulatedKind } from "./kinds.ts";
import { Simulator, type SimulatorEvent } from "./simulator.ts";

export const SIMULATE_USAGE = `  hanse simulate --kind thermometer|power-meter|relay --count N --domain D --api-key KEY:SECRET
                 --state-dir DIR [--host H] [--port P] [--direct-tls] [--ca FILE | --insecure] [--qr]
                 [--stagger MS] [--no-provisioning]
                                              run N simulated things; prints their claim URIs`;

/** Lines an operator (or a test) reads: one per event, the claim URI last on its line. */
export function formatEvent(kind: SimulatedKind, e: SimulatorEvent): string {
  switch (e.type) {
    case "unclaimed":
      return `${kind} ${e.index} ${e.jid} unclaimed ${e.uri}`;
    case "owned":
      return `${kind} ${e.index} ${e.jid} owned by ${e.owner}`;
    case "claimed":
      return `${kind} ${e.index} ${e.jid} claimed by ${e.owner}`;
    case "controlled":
      return `${kind} ${e.index} ${e.jid} ${e.text}`;
    default:
      return `${kind} ${e.index} failed: ${e.error.message}`;
  }
}

export async function simulateCommand(
  argv: readonly string[],
  usage: (message: string) => Error,
): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse(argv));
  } catch (err) {
    throw usage((err as Error).message);
  }
  const kind = values.kind as SimulatedKind | undefined;
  if (!kind || !(KINDS as readonly string[]).includes(kind))
    throw usage(`--kind must be one of ${KINDS.join(", ")}`);
  const count = Number(values.count ?? "1");
  if (!Number.isInteger(count) || count < 1 || count > 100_000)
    throw usage("--count must be a whole number from 1");
  if (!values.domain) throw usage("--domain is required");
  if (!values["state-dir"]) throw usage("--state-dir is required (each thing keeps its state there)");
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536))
    throw usage("--port must be a port number");
  let apiKey: { key: string; secret: string } | undefined;
  if (values["api-key"]) {
    const at = values["api-key"].indexOf(":");
    if (at <= 0) throw usage("--api-key must be KEY:SECRET");
    apiKey = { key: values["api-key"].slice(0, at), secret: values["api-key"].slice(at + 1) };
  }
  if (values.ca && values.insecure) throw usage("give --ca or --insecure, not both");
  let ca: string | undefined;
  if (values.ca) {
    try {
      ca = readFileSync(values.ca, "utf8");
    } catch (err) {
      throw new Error(`cannot read ${values.ca}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let qrQueue = Promise.resolve();
  const simulator = new Simulator({
    kind,
    count,
    domain: values.domain,
    stateDir: values["state-dir"],
    ...(values.host !== undefined && { host: values.host }),
    ...(port !== undefined && { port }),
    ...(values["direct-tls"] && { tls: "direct" as const }),
    ...(ca !== undefined && { ca }),
    ...(values.insecure && { rejectUnauthorized: false }),
    ...(apiKey && { apiKey }),
    ...(values["no-provisioning"] && { provisioning: false as const }),
    ...(values.stagger !== undefined && { staggerMs: Math.max(0, Number(values.stagger) || 0) }),
    report: (event) => {
      out(formatEvent(kind, event));
      if (event.type === "unclaimed" && values.qr) {
        const uri = event.uri;
        qrQueue = qrQueue.then(async () => {
          process.stdout.write((await renderQr(uri, "terminal")).data);
        });
      }
    },
  });

  let exitCode = 0;
  const stopped = new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
    simulator.start().then(
      ({ started, failed }) => {
        out(
          `simulating ${started} ${kind}${started === 1 ? "" : "s"}${failed ? ` (${failed} failed to start)` : ""}`,
        );
        if (started === 0) {
          exitCode = 1; // nothing to simulate: stop instead of idling
          resolve();
        }
      },
      (err: Error) => {
        out(`failed: ${err.message}`);
        exitCode = 1;
        resolve();
      },
    );
  });
  await stopped;
  await simulator.stop();
  await qrQueue;
  out("stopped");
  // A half-closed socket must not keep a stopped simulator alive.
  setTimeout(() => process.exit(exitCode), 2000).unref();
  return exitCode;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: false,
    options: {
      kind: { type: "string" },
      count: { type: "string" },
      domain: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      "state-dir": { type: "string" },
      ca: { type: "string" },
      insecure: { type: "boolean" },
      "direct-tls": { type: "boolean" },
      qr: { type: "boolean" },
      stagger: { type: "string" },
      "no-provisioning": { type: "boolean" },
    },
  });
}
