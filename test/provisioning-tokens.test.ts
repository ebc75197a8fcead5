/**
 * XEP-0324 tokens end to end with an independent client (@xmpp/client) and a real RSA certificate
 * (node:crypto key, node-forge certificate): getToken → an OAEP challenge only the private key
 * opens → the answer → a token without whitespace, the same for the same certificate; wrong
 * answers, unknown or foreign sequence numbers and bad certificates get the XEP's errors.
 * References: XEP-0324 §3.1 (getToken, getTokenChallenge, getTokenChallengeResponse,
 * getTokenResponse), RFC 8017 §7.1 (RSAES-OAEP).
 */
import assert from "node:assert/strict";
import { constants, privateDecrypt, X509Certificate } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { NS_PROV, refused } from "../provisioning/testing.ts";
import { issueCertificate } from "../server/net/certs.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { type Element, loginTo, type TestClient, xml } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";

describe("provisioning tokens (XEP-0324 getToken)", () => {
  let broker: TestBroker;
  let device: TestClient;
  let stranger: TestClient;
  let cert: { der: string; keyPem: string };

  before(async () => {
    broker = await startTestBroker();
    await broker.addUser("t1", "t1-pw");
    await broker.addUser("mallory", "mallory-pw");
    device = await loginTo(broker, "t1", "t1-pw", { resource: "r1" });
    stranger = await loginTo(broker, "mallory", "mallory-pw", { resource: "r1" });
    const issued = await issueCertificate({ names: ["t1.localhost"], xmppAddrs: [], srvDomains: [] });
    cert = { der: new X509Certificate(issued.certPem).raw.toString("base64"), keyPem: issued.keyPem };
  });
  after(async () => {
    await Promise.all([device?.stop(), stranger?.stop()].map((p) => p?.catch(() => {})));
    await broker?.stop();
  });

  const ask = async (client: TestClient, payload: Element): Promise<Element> =>
    (
      await client.iqCaller.request(xml("iq", { type: "get", to: PROV }, payload), 10_000)
    ).getChildElements()[0]!;
  const getToken = (client: TestClient, base64: string) =>
    ask(client, xml("getToken", { xmlns: NS_PROV }, base64));
  const respond = (client: TestClient, seqnr: string, base64: string) =>
    ask(client, xml("getTokenChallengeResponse", { xmlns: NS_PROV, seqnr }, base64));
  /** What only the holder of the private key can do. */
  const decrypt = (challenge: Element) =>
    privateDecrypt(
      { key: cert.keyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
      Buffer.from(challenge.text(), "base64"),
    ).toString("base64");

  test("the holder of the private key gets a token, the same one for the same certificate", async () => {
    const challenge = await getToken(device, cert.der);
    assert.equal(challenge.name, "getTokenChallenge");
    assert.match(challenge.attrs.seqnr, /^\d+$/);
    const response = await respond(device, challenge.attrs.seqnr, decrypt(challenge));
    assert.equal(response.name, "getTokenResponse");
    const token = response.attrs.token as string;
    assert.match(token, /^\S{16,}$/, "a token contains no whitespace");

    // Again with the certificate split over lines (base64Binary allows whitespace).
    const again = await getToken(device, cert.der.replace(/(.{64})/g, "$1\n"));
    assert.notEqual(again.attrs.seqnr, challenge.attrs.seqnr);
    assert.equal((await respond(device, again.attrs.seqnr, decrypt(again))).attrs.token, token);

    const [row] = await broker.storage.db<
      { jid: string }[]
    >`select jid from prov_tokens where token = ${token}`;
    assert.equal(row?.jid, "t1@localhost");
    const [audit] = await broker.storage.db<{ actor: string }[]>`
      select actor from prov_audit where action = 'token-issued' order by id limit 1`;
    assert.equal(audit?.actor, "t1@localhost", "issuing is audited at once");
  });

  test("a wrong answer is bad-request and ends the challenge; unknown and foreign seqnr are item-not-found", async () => {
    const challenge = await getToken(device, cert.der);
    const seqnr = challenge.attrs.seqnr as string;
    // Another JID cannot answer it, even with the right secret.
    await refused(respond(stranger, seqnr, decrypt(challenge)), "item-not-found");
    await refused(respond(device, seqnr, Buffer.alloc(32, 7).toString("base64")), "bad-request");
    await refused(respond(device, seqnr, decrypt(challenge)), "item-not-found");
    await refused(respond(device, "2147483000", decrypt(challenge)), "item-not-found");
    await refused(respond(device, "twelve", decrypt(challenge)), "bad-request");
  });

  test("what is not an RSA X.509 certificate is refused with bad-request", async () => {
    await refused(getToken(device, Buffer.from("not a certificate").toString("base64")), "bad-request");
    await refused(getToken(device, "!!!not base64!!!"), "bad-request");
    await refused(getToken(device, ""), "bad-request");
    await refused(getToken(device, "A".repeat(20_000)), "bad-request");
  });

  test("open challenges per requester are limited", async () => {
    let refusedOnce = false;
    for (let i = 0; i < 10 && !refusedOnce; i++) {
      try {
        await getToken(stranger, cert.der);
      } catch (err) {
        assert.equal((err as { condition?: string }).condition, "resource-constraint");
        refusedOnce = true;
      }
    }
    assert.ok(refusedOnce, "the sixth open challenge is refused");
  });
});
