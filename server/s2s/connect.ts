/**
 * The transport of an outgoing s2s link: TCP (for STARTTLS) or TLS first (XEP-0368), our TLS
 * client options, and the client side of STARTTLS.
 * References: RFC 6120 §5.4.3.3 (TLS negotiation after <proceed/>), RFC 6066 §3 (SNI), RFC 7590
 * §3.1 (TLS 1.2 at least), XEP-0368 §3 (direct TLS, ALPN "xmpp-server"), XEP-0178 §3 (the client
 * certificate the peer checks for SASL EXTERNAL).
 */
import net from "node:net";
import tls from "node:tls";
import { ALPN_SERVER, MIN_TLS_VERSION } from "../net/tls.ts";
import type { Target } from "./resolve.ts";

/** Our side of TLS as a client: trust anchors, and our certificate (for the peer's EXTERNAL). */
export interface ClientTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly ca: readonly string[];
}

const TLS_HANDSHAKE_TIMEOUT_MS = 15_000;

export function clientTlsOptions(remote: string, material: ClientTls): tls.ConnectionOptions {
  return {
    // RFC 6066 §3: SNI is the domain we want (never an IP address).
    ...(net.isIP(remote) ? {} : { servername: remote }),
    ca: [...material.ca],
    // Our certificate, so the peer can offer SASL EXTERNAL (XEP-0178 §3).
    cert: material.certPem,
    key: material.keyPem,
    // The link checks the certificate itself (checkPeer); dialback may stand in for it.
    rejectUnauthorized: false,
    minVersion: MIN_TLS_VERSION, // RFC 7590 §3.1
  };
}

/**
 * Connects to one target: TCP, or TLS first for XEP-0368 targets. `onSocket` receives the socket
 * at once (so a timeout elsewhere can destroy it). Rejects with the socket error.
 */
export function openTarget(
  target: Target,
  options: tls.ConnectionOptions,
  onSocket: (socket: net.Socket) => void,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.directTls
      ? tls.connect({ host: target.host, port: target.port, ...options, ALPNProtocols: [ALPN_SERVER] })
      : net.connect({ host: target.host, port: target.port });
    onSocket(socket);
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once("error", onError);
    socket.once(target.directTls ? "secureConnect" : "connect", () => {
      socket.off("error", onError);
      // Until XmlConnection attaches its own: an unhandled 'error' would end the process.
      socket.on("error", () => {});
      resolve(socket);
    });
  });
}

/** Client side of STARTTLS on the plain socket, after <proceed/> (RFC 6120 §5.4.3.3). */
export function startTlsClient(plain: net.Socket, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secured = tls.connect({ socket: plain, ...options });
    const timer = setTimeout(() => {
      secured.destroy();
      reject(new Error(`no TLS handshake within ${TLS_HANDSHAKE_TIMEOUT_MS} ms`));
    }, TLS_HANDSHAKE_TIMEOUT_MS);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    secured.once("error", onError);
    secured.once("secureConnect", () => {
      clearTimeout(timer);
      secured.off("error", onError);
      secured.on("error", () => {});
      resolve(secured);
    });
  });
}
