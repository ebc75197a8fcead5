/**
 * The device-side XMPP client (firmware/xmpp) against a real ejabberd (Debian's 23.01, started on
 * a loopback address and an Erlang node of its own by test/interop/peers/ejabberd.sh). ejabberd
 * offers SCRAM-*-PLUS and then refuses our tls-exporter binding ("Invalid channel binding"): the
 * device must still get in, once, without the binding, and keep working.
 * A missing ejabberd fails with the command that installs it.
 * References: RFC 5802 §6 (channel binding), RFC 9266, RFC 6120 §6, XEP-0198, XEP-0199.
 */
import assert from "node:assert/strict";
import { after, before, describe, type TestContext, test } from "node:test";
import { XmppClient } from "../firmware/xmpp/client.ts";
import { createPeer, type Peer, peerInstalled } from "./interop/support/peers.ts";
import { xml } from "./support/xmpp-client.ts";

const DOMAIN = "fw-ejabberd.test";
const IP = "127.0.3.3";

describe("firmware XMPP client against ejabberd", () => {
  let peer: Peer;

  before(async () => {
    if (!peerInstalled("ejabberd")) throw new Error("ejabberd is not installed: apt-get install ejabberd");
    // A distribution port and node name of this file's own: never meets the federation suite's.
    peer = createPeer({
      kind: "ejabberd",
      domain: DOMAIN,
      ip: IP,
      hosts: { [DOMAIN]: IP },
      env: { EJABBERD_DIST_PORT: "24473", EJABBERD_NODE: "hansefirmware" },
    });
    await peer.start();
    await peer.register("device", "device-pw");
  });
  after(async () => {
    await peer?.stop();
    peer?.remove();
  });

  test("logs in despite the refused channel binding, then asks the server", async (t: TestContext) => {
    const warnings: string[] = [];
    const d = new XmppClient({
      domain: DOMAIN,
      host: IP,
      port: 5222,
      ca: peer.certificate(),
      username: "device",
      password: "device-pw",
      reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
      log: (level, msg) => void (level === "warn" && warnings.push(msg)),
    });
    try {
      await d.start();
      t.diagnostic(`ejabberd login: ${d.mechanism}; warnings: ${warnings.join("; ") || "none"}`);
      assert.equal(d.jid?.split("/")[0], `device@${DOMAIN}`);
      assert.match(d.mechanism ?? "", /^SCRAM-SHA-(1|256|512)$/);
      assert.equal(d.streamManagement, true, "ejabberd's mod_stream_mgmt is on");
      const pong = await d.request(
        xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      );
      assert.equal(pong.attrs.type, "result");
    } catch (err) {
      (err as Error).message += `\n--- ejabberd log ---\n${peer.logTail()}`;
      throw err;
    } finally {
      await d.stop();
    }
  });
});
