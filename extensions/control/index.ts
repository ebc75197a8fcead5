/**
 * XEP-0325 control (`urn:xmpp:iot:control`): the codec shared by devices, the broker and
 * clients, the control form, and the client helpers.
 * References: XEP-0325 (see each file).
 */
export * from "./client.ts";
export * from "./control-form.ts";
export * from "./parameters.ts";
export * from "./set.ts";
