/**
 * The reliable UDP server's front door, sans-I/O: answers HELLOs, runs the
 * keyed handshake (CHALLENGE, AUTH) with bounded state, and says when a
 * session may be opened — before any receiver or file exists. All times are milliseconds.
 *
 * @module
 */

import {
  handshakeProof,
  KEY_REQUIRED,
  ReplayGuard,
  SERVER_KEYLESS,
  verifyHandshakeProof,
  WRONG_KEY,
} from "../shared/auth.ts";
import { bytesEqual } from "../shared/protocol.ts";
import {
  type AuthMsg,
  encodeReliable,
  type HelloMsg,
  MsgType,
  reliableSessionKeys,
  ReliableStatus,
} from "../shared/protocol_reliable.ts";
import type { ReceiverKeys } from "./reliable_receiver.ts";

export { KEY_REQUIRED, SERVER_KEYLESS, WRONG_KEY } from "../shared/auth.ts";

/** Options of a {@linkcode HandshakeGate}. */
export interface GateOptions {
  /** The server's pre-shared key; without one, HELLOs open sessions directly. */
  psk?: Uint8Array;
  /** A fresh random 32-byte server nonce per handshake (the driver's randomness). */
  nonce: () => Uint8Array;
  /** Most handshakes waiting for their AUTH; the oldest is forgotten first. Default 1024. */
  maxPending?: number;
  /** A handshake waiting for its AUTH is forgotten after this long, ms. Default 5 s. */
  pendingTtlMs?: number;
  /** Remembers client nonces of completed handshakes. Default: 65536 for 10 minutes. */
  replay?: ReplayGuard;
}

/** What the gate decided about a HELLO or AUTH. */
export type GateVerdict =
  | {
    /** Open a session for `hello` (with `keys` when the server has a key). */
    kind: "open";
    hello: HelloMsg;
    keys?: ReceiverKeys;
  }
  | {
    /** Send `bytes` back (a CHALLENGE, or a refusal whose text is `refusal`). */
    kind: "reply";
    bytes: Uint8Array;
    refusal?: string;
  }
  | {
    /** Nothing to do (an AUTH for no pending handshake, a replay). */
    kind: "drop";
    reason: string;
  };

interface PendingHandshake {
  hello: HelloMsg;
  helloBytes: Uint8Array;
  serverNonce: Uint8Array;
  challenge: Uint8Array;
  expires: number;
}

/**
 * The server side of the handshake, sans-I/O: decides what a HELLO or AUTH
 * from an address gets. Without a key a plain HELLO opens a session (and a
 * keyed one is refused). With a key, a plain HELLO is refused, a keyed HELLO
 * gets a CHALLENGE (a fresh server nonce and the server's proof) and is
 * remembered — in bounded state: at most `maxPending` handshakes, each for
 * `pendingTtlMs`, so a flood of HELLOs costs a fixed amount of memory and no
 * session slot — and its AUTH opens the session only when the client's proof
 * verifies and its nonce was never used before ({@linkcode ReplayGuard}).
 * No file exists before that.
 */
export class HandshakeGate {
  #psk: Uint8Array | undefined;
  #nonce: () => Uint8Array;
  #maxPending: number;
  #ttl: number;
  #replay: ReplayGuard;
  #unanswered = new Set<string>();
  #unansweredTotal = 0;
  #pending = new Map<string, PendingHandshake>();

  /** Creates a gate. */
  constructor(options: GateOptions) {
    this.#psk = options.psk;
    this.#nonce = options.nonce;
    this.#maxPending = Math.max(1, options.maxPending ?? 1024);
    this.#ttl = options.pendingTtlMs ?? 5000;
    this.#replay = options.replay ?? new ReplayGuard();
  }

  /** Handshakes waiting for their AUTH. */
  get pending(): number {
    return this.#pending.size;
  }

  /** When the oldest waiting handshake expires (for the driver's timer), or `Infinity`. */
  get nextExpiry(): number {
    for (const pending of this.#pending.values()) return pending.expires;
    return Infinity;
  }

  /**
   * Forgets handshakes past their time and returns the peers whose CHALLENGE
   * went unanswered since the last call (each once, at most 8, and how many
   * in all): a client holding another key stops at our CHALLENGE, whose
   * proof it cannot verify, and never sends AUTH, so this is the only trace
   * of it the server sees.
   */
  takeUnanswered(now: number): { peers: string[]; total: number } {
    this.#expire(now);
    const result = { peers: [...this.#unanswered], total: this.#unansweredTotal };
    this.#unanswered.clear();
    this.#unansweredTotal = 0;
    return result;
  }

  /** A HELLO (`datagram`, decoded as `hello`) from `peer` (any string naming the address) for no live session. */
  hello(now: number, hello: HelloMsg, datagram: Uint8Array, peer: string): GateVerdict {
    const psk = this.#psk;
    if (!psk) return hello.nonce ? refuse(hello.session, SERVER_KEYLESS) : { kind: "open", hello };
    if (!hello.nonce) return refuse(hello.session, KEY_REQUIRED);
    this.#expire(now);
    const id = `${peer}/${hello.session}`;
    const known = this.#pending.get(id);
    // A repeated HELLO (our CHALLENGE was lost) gets the same CHALLENGE.
    if (known && bytesEqual(known.helloBytes, datagram)) return { kind: "reply", bytes: known.challenge };
    this.#pending.delete(id);
    while (this.#pending.size >= this.#maxPending) {
      this.#pending.delete(this.#pending.keys().next().value as string);
    }
    const helloBytes = datagram.slice();
    const serverNonce = this.#nonce();
    const challenge = encodeReliable({
      type: MsgType.CHALLENGE,
      session: hello.session,
      nonce: serverNonce,
      proof: handshakeProof(psk, "server", hello.nonce, serverNonce, helloBytes),
    });
    this.#pending.set(id, { hello, helloBytes, serverNonce, challenge, expires: now + this.#ttl });
    return { kind: "reply", bytes: challenge };
  }

  /** An AUTH from `peer` for no live session. */
  auth(now: number, auth: AuthMsg, peer: string): GateVerdict {
    const psk = this.#psk;
    if (!psk) return { kind: "drop", reason: "AUTH, but this server has no key" };
    this.#expire(now);
    const id = `${peer}/${auth.session}`;
    const pending = this.#pending.get(id);
    if (!pending) return { kind: "drop", reason: "AUTH without a pending handshake" };
    const { hello, helloBytes, serverNonce } = pending;
    const clientNonce = hello.nonce as Uint8Array;
    if (!verifyHandshakeProof(psk, "client", clientNonce, serverNonce, helloBytes, auth.proof)) {
      return refuse(auth.session, WRONG_KEY);
    }
    this.#pending.delete(id);
    if (!this.#replay.check(clientNonce, now)) {
      return { kind: "drop", reason: "replayed handshake (its client nonce was used before)" };
    }
    const keys = reliableSessionKeys(psk, clientNonce, serverNonce, helloBytes);
    return {
      kind: "open",
      hello,
      keys: { receive: keys.clientToServer, send: keys.serverToClient, authProof: auth.proof },
    };
  }

  /** Forgets handshakes past their time (the map is in creation order, all with the same time to live). */
  #expire(now: number): void {
    for (const [id, pending] of this.#pending) {
      if (pending.expires > now) break;
      this.#pending.delete(id);
      this.#unansweredTotal++;
      if (this.#unanswered.size < 8) this.#unanswered.add(id.slice(0, id.lastIndexOf("/")));
    }
  }
}

function refuse(session: number, message: string): GateVerdict {
  const bytes = encodeReliable({
    type: MsgType.ACCEPT,
    session,
    status: ReliableStatus.REFUSED,
    window: 0,
    message,
  });
  return { kind: "reply", bytes, refusal: message };
}
