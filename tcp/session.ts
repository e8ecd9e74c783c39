/**
 * The pieces of a framed version-2 TCP session that sender and receiver
 * share: per-direction session keys, reading one framed message, and hashing
 * a file's prefix for resume.
 *
 * @module
 */

import { Authenticator, sessionKey } from "../shared/auth.ts";
import type { BufferedReader } from "../shared/conn_io.ts";
import type { ContentHash } from "../shared/digest.ts";
import type { ParseResult } from "../shared/protocol.ts";

/** The two authenticators of a keyed session, one per direction. */
export interface SessionKeys {
  /** Client → server: the start message, records and the trailer. */
  toServer: Authenticator;
  /** Server → client: the accept message and the reply. */
  toClient: Authenticator;
}

/**
 * The session keys of a keyed TCP session (HKDF-SHA-256 over the key, both
 * nonces and the request exactly as sent).
 */
export function tcpSessionKeys(
  psk: Uint8Array,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
  request: Uint8Array,
): SessionKeys {
  return {
    toServer: new Authenticator(sessionKey(psk, clientNonce, serverNonce, "tcp client->server", request)),
    toClient: new Authenticator(sessionKey(psk, clientNonce, serverNonce, "tcp server->client", request)),
  };
}

/**
 * Reads one message that `parse` recognises; `undefined` when the stream
 * ends first. The value must not keep views into the reader's buffer.
 */
export async function readFrame<T>(
  reader: BufferedReader,
  parse: (bytes: Uint8Array) => ParseResult<T>,
): Promise<T | undefined> {
  let result = parse(await reader.peek(1));
  while ("need" in result) {
    const view = await reader.peek(result.need);
    if (view.length < result.need) return undefined;
    result = parse(view);
  }
  reader.skip(result.consumed);
  return result.value;
}

/**
 * Feeds the first `length` bytes of `source` to `hash` in 1 MiB blocks,
 * yielding to the event loop every 16 MiB (so a server keeps serving other
 * clients) and calling `onBlock` after each block. Returns false when the
 * source holds fewer bytes.
 */
export async function hashPrefix(
  source: { readAt(buffer: Uint8Array, position: number): number },
  length: number,
  hash: ContentHash,
  onBlock: () => void = () => {},
): Promise<boolean> {
  const block = new Uint8Array(Math.min(1 << 20, Math.max(1, length)));
  for (let position = 0, i = 1; position < length; i++) {
    const n = source.readAt(block.subarray(0, Math.min(block.length, length - position)), position);
    if (n === 0) return false;
    hash.update(block.subarray(0, n));
    position += n;
    onBlock();
    if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return true;
}
