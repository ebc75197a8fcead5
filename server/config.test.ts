import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, loadConfig, parseConfig } from "./config.ts";

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "hanse-config-"));
  const file = join(dir, "hanse.toml");
  writeFileSync(file, text);
  return file;
}

test("every key has a default: an empty config is a working one", () => {
  const config = parseConfig({});
  assert.equal(config.domain, "localhost");
  assert.equal(config.c2s.port, 5222);
  assert.equal(config.c2s.tls_port, 5223);
  assert.equal(config.c2s.require_tls, true);
  assert.equal(config.http.port, 5280);
  assert.equal(config.http.bind, "127.0.0.1", "metrics are on loopback by default");
  assert.equal(config.limits.max_stanza_bytes, 256 * 1024);
  assert.equal(config.database.url, undefined, "embedded database by default");
  assert.equal(config.log.level, "info");
});

test("a TOML file sets values; env overrides win; paths resolve against the cwd", () => {
  const file = configFile(
    `domain = "Example.ORG"\ndata_dir = "var/hanse"\n[c2s]\nport = 15222\n[log]\nlevel = "debug"\n`,
  );
  const config = loadConfig(file, { HANSE_C2S_PORT: "25222" });
  assert.equal(config.domain, "example.org", "the domain is normalised");
  assert.equal(config.c2s.port, 25222);
  assert.equal(config.log.level, "debug");
  assert.equal(config.data_dir, join(process.cwd(), "var/hanse"));
});

test("HANSE_CONFIG names the file when --config is not given", () => {
  const file = configFile(`domain = "from-env.example"\n`);
  assert.equal(loadConfig(undefined, { HANSE_CONFIG: file }).domain, "from-env.example");
});

test("an unknown key stops the start with a message naming it", () => {
  const file = configFile(`[c2s]\nprot = 1\n`);
  assert.throws(
    () => loadConfig(file, {}),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /c2s\.prot: unknown key/);
      return true;
    },
  );
  assert.throws(() => parseConfig({ colour: "blue" }), /colour: unknown key/);
});

test("a bad value names its key", () => {
  assert.throws(() => parseConfig({ c2s: { port: "x" } }), /c2s\.port:/);
  assert.throws(() => parseConfig({ c2s: { port: 70000 } }), /c2s\.port:/);
  assert.throws(() => parseConfig({ limits: { max_stanza_bytes: 100 } }), /limits\.max_stanza_bytes:/);
  assert.throws(() => parseConfig({ log: { level: "loud" } }), /log\.level:/);
  assert.throws(() => parseConfig({ domain: "not a domain" }), /domain:/);
  assert.throws(() => parseConfig({ database: { url: "nonsense" } }), /database\.url:/);
});

test("invalid TOML and a missing file are reported as such", () => {
  assert.throws(() => loadConfig(configFile("domain = \n"), {}), /not valid TOML/);
  assert.throws(
    () => loadConfig("/nonexistent/hanse.toml", {}),
    /cannot read config file \/nonexistent\/hanse.toml: ENOENT/,
  );
});

test("tls.cert and tls.key go together", () => {
  const file = configFile(`[tls]\ncert = "a.pem"\n`);
  assert.throws(() => loadConfig(file, {}), /tls.cert and tls.key must be set together/);
});
