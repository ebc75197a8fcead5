/**
 * An in-memory StanzaPort wired to a small scripted device, for unit tests of the client-side
 * collectors. Every stanza crosses as serialized XML and is parsed again, so what the tests see
 * is what would go over a connection.
 * References: RFC 6120 §8.2.3 (iq result or error), §8.3 (error stanzas).
 */
import { type Element, parse } from "ltx";
import { StanzaError, type StanzaErrorCondition } from "../../server/xml/errors.ts";
import type { StanzaPort } from "./port.ts";

export interface DeviceContext {
  /** The device sends a stanza (a message) to the client. */
  emit(stanza: Element): void;
}

/** Answers an iq payload with a payload for the result (or undefined for an empty result); throws StanzaError to fail. */
export type DeviceHandler = (payload: Element, iq: Element, device: DeviceContext) => Element | undefined;

const roundTrip = (el: Element): Element => parse(el.toString()) as Element;

export function memoryPort(
  deviceJid: string,
  clientJid: string,
  handler: DeviceHandler,
): StanzaPort & { sent: Element[] } {
  const listeners = new Set<(stanza: Element) => void>();
  const sent: Element[] = [];
  const deliver = (stanza: Element) => {
    const copy = roundTrip(stanza);
    setImmediate(() => {
      for (const l of [...listeners]) l(copy);
    });
  };
  const device: DeviceContext = {
    emit(stanza) {
      stanza.attrs.from ??= deviceJid;
      stanza.attrs.to ??= clientJid;
      deliver(stanza);
    },
  };
  return {
    sent,
    async request(iq) {
      const wire = roundTrip(iq);
      sent.push(wire);
      const payload = wire.getChildElements()[0];
      if (!payload) throw new StanzaError("bad-request", "empty iq");
      try {
        const answer = handler(payload, wire, device);
        const result = parse(`<iq type='result' from='${deviceJid}' id='${wire.attrs.id}'/>`) as Element;
        if (answer) result.cnode(answer);
        return roundTrip(result);
      } catch (error) {
        if (!(error instanceof StanzaError)) throw error;
        // What a client adapter does with an error iq: rebuild the StanzaError, keep the app element.
        const wireError = roundTrip(error.toElement());
        const condition = wireError.getChildElements()[0]!.getName() as StanzaErrorCondition;
        const app = wireError
          .getChildElements()
          .find((c) => c.getNS() !== "urn:ietf:params:xml:ns:xmpp-stanzas");
        throw new StanzaError(condition, error.text, app ? { appElement: app } : {});
      }
    },
    send(stanza) {
      sent.push(roundTrip(stanza));
    },
    onStanza(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
