/**
 * The `hanse` command line as an operator uses it: account commands against a data directory with
 * no broker running (the CLI opens the embedded engine itself), their error messages and exit
 * codes, --help, and configuration errors stopping `hanse start` with a message naming the key.
 * References: README "Command line" and "Configuration", server/main.ts, server/config.ts.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { embeddedDataDirFromTemplate, tempDataDir } from "../server/storage/testing.ts";
import { type RunResult, runHanse, writePasswordFile } from "./support/broker-process.ts";

/** A failed command: exit code 1 and a single `hanse: ...` line on stderr matching `pattern`. */
function assertOneLineError(result: RunResult, pattern: RegExp): void {
  const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.code, 1, detail);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr\n${detail}`);
  assert.match(lines[0]!, /^hanse: /, detail);
  assert.match(lines[0]!, pattern, detail);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
}

/** A failed `hanse start`: exit code 1, a `hanse: ` message matching every pattern, no stack trace. */
function assertStartError(result: RunResult, ...patterns: RegExp[]): void {
  const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.code, 1, detail);
  assert.match(result.stderr, /^hanse: /, detail);
  for (const p of patterns) assert.match(result.stderr, p, detail);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(result.stdout, /Hanse is serving/, detail);
}

describe("hanse user (no broker running, embedded engine)", () => {
  let configPath = "";
  const hanse = (args: string[], input?: string) =>
    runHanse([...args, "--config", configPath], input === undefined ? {} : { input });
  const pw = writePasswordFile("correct horse battery staple");

  before(async () => {
    const dir = tempDataDir("hanse-cli-");
    const dataDir = join(dir, "data");
    await embeddedDataDirFromTemplate(dataDir);
    configPath = join(dir, "hanse.toml");
    writeFileSync(configPath, `domain = "localhost"\ndata_dir = "${dataDir}"\n`);
  });

  test("add with --password-file, list, passwd, del", async () => {
    const add = await hanse(["user", "add", "alice@localhost", "--password-file", pw]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /created alice@localhost/);

    let list = await hanse(["user", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(list.stdout.trim().split("\n"), ["alice@localhost"]);

    const newPw = writePasswordFile("another one");
    const passwd = await hanse(["user", "passwd", "alice@localhost", "--password-file", newPw]);
    assert.equal(passwd.code, 0, passwd.stderr);
    assert.match(passwd.stdout, /password changed for alice@localhost/);

    const del = await hanse(["user", "del", "alice@localhost"]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /deleted alice@localhost/);

    list = await hanse(["user", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim(), "");
  });

  test("add with the password on stdin; a bare localpart means this domain", async () => {
    const add = await hanse(["user", "add", "Bob"], "from stdin\n");
    assert.equal(add.code, 0, add.stderr);
    // Localparts are case-folded (RFC 7622 §3.3 UsernameCaseMapped).
    assert.match(add.stdout, /created bob@localhost/);
    const list = await hanse(["user", "list"]);
    assert.match(list.stdout, /^bob@localhost$/m);
  });

  test("errors: one line on stderr, exit code 1", async () => {
    const add = await hanse(["user", "add", "carol@localhost", "--password-file", pw]);
    assert.equal(add.code, 0, add.stderr);

    // These touch the database: one at a time (each CLI run opens the embedded engine itself).
    assertOneLineError(
      await hanse(["user", "add", "carol@localhost", "--password-file", pw]),
      /already exists/,
    );
    assertOneLineError(await hanse(["user", "del", "nobody@localhost"]), /no account nobody/);
    assertOneLineError(
      await hanse(["user", "passwd", "nobody@localhost", "--password-file", pw]),
      /no account nobody/,
    );
    assertOneLineError(await hanse(["user", "add", "erin@localhost"], "\n"), /password is empty/);
    assertOneLineError(await hanse(["user", "add", "erin@localhost"], ""), /password is empty/);
    assertOneLineError(
      await hanse(["user", "add", "erin@localhost", "--password-file", writePasswordFile("")]),
      /password is empty/,
    );

    // These fail before the database is opened, so they may run side by side.
    const [otherDomain, badJid, noFile] = await Promise.all([
      hanse(["user", "add", "dave@example.org", "--password-file", pw]),
      hanse(["user", "add", "da ve@localhost", "--password-file", pw]),
      hanse(["user", "add", "erin@localhost", "--password-file", "/nonexistent/pw"]),
    ]);
    assertOneLineError(otherDomain!, /dave@example\.org is not on this broker's domain \(localhost\)/);
    assertOneLineError(badJid!, /invalid JID da ve@localhost/);
    assertOneLineError(noFile!, /cannot read password file \/nonexistent\/pw: ENOENT/);

    // None of the failures changed anything.
    const list = await hanse(["user", "list"]);
    assert.doesNotMatch(list.stdout, /dave|erin|nobody/);
    assert.match(list.stdout, /^carol@localhost$/m);
  });
});

describe("hanse (usage)", { concurrency: true }, () => {
  test("--help prints the usage on stdout, exit code 0", async () => {
    const r = await runHanse(["--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage:/);
    for (const cmd of [
      "hanse start",
      "hanse user add",
      "hanse user passwd",
      "hanse user del",
      "hanse user list",
      "hanse provisioning audit",
      "hanse simulate",
    ]) {
      assert.ok(r.stdout.includes(cmd), `usage mentions ${cmd}`);
    }
    // Commands with options of their own answer --help too, instead of "unknown option".
    for (const args of [
      ["simulate", "--help"],
      ["provisioning", "audit", "--help"],
      ["user", "add", "-h"],
    ]) {
      const sub = await runHanse(args);
      assert.equal(sub.code, 0, `${args.join(" ")}: ${sub.stderr}`);
      assert.match(sub.stdout, /^usage:/);
    }
    assert.equal(r.stderr, "");
  });

  test("an unknown command fails naming it", async () => {
    const r = await runHanse(["frobnicate"]);
    assert.equal(r.code, 2, "usage errors exit with 2");
    assert.match(r.stderr, /^hanse: unknown command frobnicate\n/);
    assert.match(r.stderr, /usage:/);
    assert.equal(r.stdout, "");
  });

  test("an unknown user subcommand fails with the usage", async () => {
    const r = await runHanse(["user", "rename", "x"]);
    assert.equal(r.code, 2, "usage errors exit with 2");
    assert.match(r.stderr, /^hanse: hanse user add\|del\|passwd\|list\n/);
  });
});

describe("hanse start: configuration errors", { concurrency: true }, () => {
  const dir = tempDataDir("hanse-cli-config-");
  function configFile(name: string, text: string): string {
    const path = join(dir, name);
    // data_dir inside the temp dir, in case a broken check let the start go ahead.
    writeFileSync(path, `data_dir = "${join(dir, "data")}"\n${text}`);
    return path;
  }

  test("an unknown key is named", async () => {
    const path = configFile("unknown.toml", "[c2s]\nprot = 1\n");
    assertStartError(await runHanse(["start", "--config", path]), /c2s\.prot/, /unknown key/);
  });

  test("a bad value is named", async () => {
    const path = configFile("badvalue.toml", '[c2s]\nport = "x"\n');
    assertStartError(await runHanse(["start", "--config", path]), /c2s\.port/, /expected number/);
  });

  test("invalid TOML says so", async () => {
    const path = configFile("broken.toml", "[c2s\nport = 1\n");
    assertStartError(await runHanse(["start", "--config", path]), /not valid TOML/, /broken\.toml/);
  });

  test("a missing config file says so", async () => {
    const path = join(dir, "does-not-exist.toml");
    assertStartError(
      await runHanse(["start", "--config", path]),
      /cannot read config file/,
      /does-not-exist\.toml/,
      /ENOENT/,
    );
  });

  test("HANSE_CONFIG names the file too", async () => {
    const path = configFile("env.toml", "[c2s]\nprot = 1\n");
    assertStartError(await runHanse(["start"], { env: { HANSE_CONFIG: path } }), /env\.toml/, /c2s\.prot/);
  });

  test("a bad environment override is named", async () => {
    const path = configFile("ok.toml", "");
    assertStartError(
      await runHanse(["start", "--config", path], { env: { HANSE_C2S_PORT: "many" } }),
      /HANSE_C2S_PORT=many/,
      /c2s\.port/,
    );
  });
});
