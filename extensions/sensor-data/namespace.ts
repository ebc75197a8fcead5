/**
 * The XEP-0323 namespace, on its own so every file of the codec can share it.
 * References: XEP-0323 §1 (namespace urn:xmpp:iot:sensordata).
 */
export const NS_SENSOR_DATA = "urn:xmpp:iot:sensordata";
