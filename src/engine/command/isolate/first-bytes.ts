/**
 * What an intercepted connection speaks, from its first bytes: what btrfly's proxy can carry
 * (TLS, which it terminates and names by SNI; HTTP/1, named by Host) or not.
 */
export type FirstBytes = 'tls' | 'http' | 'other';

/** A TLS record of type handshake starts with 0x16; an HTTP/1 request with a method token and a space. */
export function classifyFirstBytes(chunk: Buffer): FirstBytes {
  if (chunk.length === 0) return 'other';
  if (chunk[0] === 0x16) return 'tls';
  const head = chunk.subarray(0, 24).toString('latin1');
  // HTTP/2 with prior knowledge ("PRI * HTTP/2.0") is not something the proxy speaks.
  if (head.startsWith('PRI ')) return 'other';
  return /^[A-Z][A-Z_-]{0,19}(?: |$)/.test(head) ? 'http' : 'other';
}
