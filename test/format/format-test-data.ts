import { createHash } from 'node:crypto';
import type { Entry, Header, Manifest } from '../../src/format/types';

/** SHA-256 hex of a string or bytes. */
export const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** A plausible entry whose body is `body`. */
export function entry(
  url: string,
  body: string,
  opts: { method?: string; ordinal?: number; status?: number; headers?: Header[]; reqHeaders?: Header[]; bodySha256?: string } = {},
): Entry {
  return {
    request: {
      method: opts.method ?? 'GET',
      url,
      headers: opts.reqHeaders ?? [],
      ...(opts.bodySha256 && { bodySha256: opts.bodySha256 }),
    },
    ordinal: opts.ordinal ?? 0,
    response: {
      status: opts.status ?? 200,
      statusText: 'OK',
      httpVersion: 'HTTP/1.1',
      headers: opts.headers ?? [{ name: 'Content-Type', value: 'text/plain' }],
      content: { size: Buffer.byteLength(body), mimeType: 'text/plain', sha256: sha(body), storage: 'raw', parts: 1 },
    },
  };
}

export function manifestOf(entries: Entry[], extra: Partial<Manifest> = {}): Manifest {
  return { btrflyFormat: 1, rules: [], redact: { headers: [], query: [] }, entries, ...extra };
}
