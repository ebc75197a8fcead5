/**
 * XEP-0326 concentrators (`urn:xmpp:iot:concentrators`), basics: the codec and client helpers.
 * References: XEP-0326 (see each file).
 */
export * from "./client.ts";
export * from "./commands.ts";
export * from "./model.ts";
