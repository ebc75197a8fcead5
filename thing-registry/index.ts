/**
 * The thing-registry domain folder (DESIGN.md §2): the XEP-0347 registry module, and the iotdisco
 * and QR functions the portal and the device SDK call.
 * References: XEP-0347.
 */
export { decodeIotDisco, encodeIotDisco, encodeLegacyQr, type IotDisco, IotDiscoError } from "./iotdisco.ts";
export { thingRegistryModule } from "./module.ts";
export { NS_DISCOVERY } from "./protocol.ts";
export { renderQr } from "./qr.ts";
export type { SearchOp, Tag } from "./tags.ts";
