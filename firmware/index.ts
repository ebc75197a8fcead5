/**
 * The Hanse thing SDK: build a device that speaks the IoT XEPs to Hanse or any XMPP server.
 * See firmware/README.md for a guide.
 * References: XEP-0323 (sensor data), XEP-0324 (provisioning), XEP-0325 (control), XEP-0326
 * (concentrators), XEP-0347 (thing registry), XEP-0077 + XEP-0348 (accounts with API keys).
 */
export type { ControlParameter, ParameterSpec, ParameterType } from "../extensions/control/index.ts";
export { getControlForm, sendControl } from "../extensions/control/index.ts";
export type {
  FieldCategory,
  FieldValue,
  NodeRef,
  QosFlag,
  ReadoutFailure,
  ReadoutRequest,
  SensorField,
  StanzaPort,
} from "../extensions/sensor-data/index.ts";
export { requestReadout } from "../extensions/sensor-data/index.ts";
export { createDevice, KINDS, type SimulatedDevice, type SimulatedKind } from "./simulator/kinds.ts";
export { Simulator, type SimulatorEvent, type SimulatorOptions } from "./simulator/simulator.ts";
export type { ApiKeyCredentials } from "./thing/account.ts";
export { type ConcentratorNode, DEFAULT_SOURCE } from "./thing/concentrator-server.ts";
export type { ControlHandler } from "./thing/control-server.ts";
export type { MetaTags } from "./thing/registry-client.ts";
export type { ReadoutContext, ReadoutData, SensorSource } from "./thing/sensor-server.ts";
export { loadState, StateFileError, type ThingState } from "./thing/state.ts";
export { Thing, type ThingEvents, type ThingLog, type ThingOptions } from "./thing/thing.ts";
export { registerAccount, XmppClient, type XmppClientOptions } from "./xmpp/client.ts";
