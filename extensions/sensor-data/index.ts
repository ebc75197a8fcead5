/**
 * XEP-0323 sensor data (`urn:xmpp:iot:sensordata`): the codec shared by devices (firmware/),
 * the broker (provisioning/) and clients, plus the client-side read-out helper.
 * References: XEP-0323 (see each file).
 */
export * from "./categories.ts";
export * from "./client.ts";
export * from "./field-values.ts";
export * from "./fields.ts";
export * from "./messages.ts";
export * from "./namespace.ts";
export * from "./node-ref.ts";
export * from "./port.ts";
export * from "./request.ts";
export * from "./tokens.ts";
