/**
 * The `hanse` command line: start the broker, manage accounts.
 *   hanse start [--config FILE]
 *   hanse user add JID [--password-file F] | user del JID | user passwd JID [--password-file F]
 *   hanse user list
 *   hanse apikey create --owner JID --max-accounts N [--expires DATE] | apikey list | apikey revoke KEY
 *   hanse thing qr URI [--png FILE | --svg FILE]
 *   hanse provisioning audit [--thing JID] [--owner JID] [--since ISO] [--limit N]
 *   hanse simulate --kind K --count N --domain D --api-key KEY:SECRET --state-dir DIR ...
 * Account commands work whether or not the broker runs (DESIGN.md §1.5: with the embedded engine
 * they go through the running broker's database socket).
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { APIKEY_USAGE, apikeyCommand } from "../extensions/register/cli.ts";
import { SIMULATE_USAGE, simulateCommand } from "../firmware/simulator/cli.ts";
import { modules } from "../modules.ts";
import { PROVISIONING_USAGE, provisioningCommand } from "../provisioning/cli.ts";
import { THING_USAGE, thingCommand } from "../thing-registry/cli.ts";
import { accountMigrations } from "./accounts/migrations.ts";
import { preparePassword } from "./accounts/scram-credentials.ts";
import { createAccountStore } from "./accounts/store.ts";
import { startBroker } from "./broker.ts";
import { type Config, loadConfig } from "./config.ts";
import { JidError, normalizeLocalpart, parseJid } from "./jid.ts";
import { createLogger, silentLogger } from "./observability/logger.ts";
import { openStorage } from "./storage/open.ts";

const USAGE = `usage:
  hanse start [--config FILE]                 start the broker (config also from HANSE_CONFIG)
  hanse user add JID [--password-file FILE]   create an account (password prompted or read from stdin)
  hanse user passwd JID [--password-file FILE]
  hanse user del JID
  hanse user list
${APIKEY_USAGE}
${THING_USAGE}
${PROVISIONING_USAGE}
${SIMULATE_USAGE}
options:
  --config FILE   TOML configuration file
  --help          this text`;

/** The command line itself is wrong: exit code 2, as usual for usage errors. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  // `hanse COMMAND --help` prints the usage, whatever options the command has of its own.
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  // The simulator has options of its own (it is a device, not the broker).
  if (argv[0] === "simulate") return simulateCommand(argv.slice(1), (m) => new UsageError(m));
  // The audit query has options of its own (--thing, --since, --limit).
  if (argv[0] === "provisioning") return provisioningCommand(argv.slice(1), (m) => new UsageError(m));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      "password-file": { type: "string" },
      owner: { type: "string" },
      "max-accounts": { type: "string" },
      expires: { type: "string" },
      png: { type: "string" },
      svg: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const [command, sub, arg] = positionals;
  if (command === "thing") {
    return thingCommand({ sub, uri: arg, png: values.png, svg: values.svg }, (m) => new UsageError(m));
  }
  const config = loadConfig(values.config);
  if (command === "start") return start(config);
  if (command === "user") return user(config, sub, arg, values["password-file"]);
  if (command === "apikey") {
    const { owner, expires } = values;
    const opts = { sub, key: arg, owner, maxAccounts: values["max-accounts"], expires };
    return apikeyCommand(config, opts, (m) => new UsageError(m));
  }
  throw new UsageError(`unknown command ${command}\n${USAGE}`);
}

async function start(config: Config): Promise<number> {
  const log = createLogger(config.log.level);
  const broker = await startBroker({ config, modules, log });
  const { ports } = broker;
  const lines = [`Hanse is serving ${broker.domain}`];
  if (ports.c2s) lines.push(`  c2s (STARTTLS)   ${config.c2s.bind}:${ports.c2s}`);
  if (ports.c2sTls) lines.push(`  c2s (direct TLS) ${config.c2s.bind}:${ports.c2sTls}`);
  if (ports.s2s) lines.push(`  s2s (STARTTLS)   ${config.s2s.bind}:${ports.s2s}`);
  if (ports.s2sTls) lines.push(`  s2s (direct TLS) ${config.s2s.bind}:${ports.s2sTls}`);
  if (ports.http) lines.push(`  http (/metrics)  http://${config.http.bind}:${ports.http}/metrics`);
  lines.push(`  data             ${config.data_dir} (${broker.storage.engine} database)`);
  process.stdout.write(`${lines.join("\n")}\n`);
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, "shutdown requested");
      resolve();
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  });
  await broker.stop();
  // Anything still holding the loop (a half-closed socket) must not keep a stopped broker alive.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}

/** Accepts "alice" or "alice@domain"; the domain must be the one this broker serves. */
function localpartOf(config: Config, input: string | undefined): string {
  if (!input) throw new UsageError("a JID is required, e.g. alice@" + config.domain);
  try {
    if (!input.includes("@")) return normalizeLocalpart(input);
    const jid = parseJid(input);
    if (jid.domain !== config.domain) {
      throw new Error(`${input} is not on this broker's domain (${config.domain})`);
    }
    if (jid.resource) throw new Error("give a bare JID (no /resource)");
    return jid.local;
  } catch (err) {
    if (err instanceof JidError) throw new Error(`invalid JID ${input}: ${err.message}`);
    throw err;
  }
}

async function readPassword(file: string | undefined): Promise<string> {
  if (file) {
    let text: string;
    try {
      text = readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (err) {
      throw new Error(`cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    return text.split(/\r?\n/)[0] ?? "";
  }
  if (!process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) return line;
    return "";
  }
  const first = await prompt("Password: ");
  const second = await prompt("Again: ");
  if (first !== second) throw new Error("the passwords differ");
  return first;
}

/** Reads a line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    const output = rl as unknown as { _writeToOutput(s: string): void };
    process.stdout.write(question);
    output._writeToOutput = () => {};
    rl.question("", (answer) => {
      rl.close();
      process.stdout.write("\n");
      resolve(answer);
    });
  });
}

async function user(config: Config, sub: string | undefined, arg: string | undefined, passwordFile?: string) {
  const actions = ["add", "del", "passwd", "list"];
  if (!sub || !actions.includes(sub)) throw new UsageError(`hanse user ${actions.join("|")}\n${USAGE}`);
  const username = sub === "list" ? "" : localpartOf(config, arg);
  const password = sub === "add" || sub === "passwd" ? await readPassword(passwordFile) : "";
  // Refuse an unusable password before touching the database (RFC 4013 SASLprep).
  if (sub === "add" || sub === "passwd") preparePassword(password);
  const storage = await openStorage(config, silentLogger(), { role: "cli" });
  try {
    await storage.migrate("accounts", accountMigrations);
    const accounts = createAccountStore(storage.db);
    const jid = `${username}@${config.domain}`;
    switch (sub) {
      case "add":
        await accounts.create(username, password);
        console.log(`created ${jid}`);
        break;
      case "passwd":
        if (!(await accounts.exists(username))) throw new Error(`no account ${jid}`);
        await accounts.setPassword(username, password);
        console.log(`password changed for ${jid}`);
        break;
      case "del":
        if (!(await accounts.delete(username))) throw new Error(`no account ${jid}`);
        console.log(`deleted ${jid}`);
        break;
      default:
        for (const name of await accounts.list()) console.log(`${name}@${config.domain}`);
    }
  } finally {
    await storage.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    // Expected failures (bad config, port taken, locked data dir…) print one clear line.
    process.stderr.write(`hanse: ${err.message}\n`);
    if (process.env.HANSE_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
