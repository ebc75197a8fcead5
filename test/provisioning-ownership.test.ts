/**
 * A change of owner ends the previous owner's rules: after the owner removes the thing from the
 * registry the thing gets clearCache and is unclaimed (denied by policy); after a new owner claims
 * it, questions go to the new owner and the old rule no longer applies.
 * References: XEP-0347 §3.9 (claim), §3.10 (remove); XEP-0324 §3.5 (clearCache);
 * docs/protocol/provisioning-questions.md §Who decides.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  actAsThing,
  answerByIq,
  answerForm,
  askProvisioning,
  isQuestion,
  NS_DISCO,
  NS_PROV,
  type ProvisioningTestBed,
  questionFields,
  registerAndClaim,
  startProvisioningTestBed,
  until,
} from "../provisioning/testing.ts";
import { xml } from "./support/xmpp-client.ts";

const PROV = "provisioning.localhost";
const REG = "registry.localhost";

describe("provisioning after a change of owner", () => {
  let bed: ProvisioningTestBed;
  before(async () => {
    bed = await startProvisioningTestBed(["t1", "alice", "olivia"]);
  });
  after(() => bed?.stop());
  const login = (name: string) => bed.login(name);

  test("the previous owner's rules stop applying", async () => {
    const alice = await login("alice");
    const olivia = await login("olivia");
    const thing = actAsThing(await login("t1"), PROV);
    thing.client.iqCallee.set(NS_DISCO, "removed", () => ({}));
    await registerAndClaim(thing, alice, REG, "own-1");
    const isFriend = async () =>
      (await askProvisioning(thing.client, PROV, xml("isFriend", { xmlns: NS_PROV, jid: "bob@localhost" })))
        .attrs.result;
    assert.equal(await isFriend(), "false");
    const key = questionFields(await alice.nextStanza(isQuestion, 10_000)).get("key")![0]!;
    await answerByIq(alice, PROV, answerForm(key, "allow", "everyone"));
    assert.equal(await isFriend(), "true");

    const cleared = thing.clearCaches.length;
    await alice.iqCaller.request(
      xml("iq", { type: "set", to: REG }, xml("remove", { xmlns: NS_DISCO, jid: "t1@localhost" })),
    );
    await until("clearCache after the owner changed", () => thing.clearCaches.length > cleared);
    assert.equal(await isFriend(), "false", "unclaimed: operator policy");

    thing.owner = undefined;
    await registerAndClaim(thing, olivia, REG, "own-2");
    assert.equal(await isFriend(), "false", "alice's rule is not olivia's");
    const q = questionFields(await olivia.nextStanza(isQuestion, 10_000));
    assert.deepEqual(q.get("thing"), ["t1@localhost"]);
    // The question went to the new owner only.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alice.inbox.filter(isQuestion).length, 0, "no question to the previous owner");
  });
});
