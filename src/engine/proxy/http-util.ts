import type { IncomingMessage } from 'node:http';
import { hopByHopNames } from '../../format/manifest';
import type { Header } from '../../format/types';

/** Headers the recorder never sends upstream with a GET or HEAD, so the archive always holds whole bodies (docs/contract.md, "Fidelity"). */
const NOT_UPSTREAM = new Set(['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since']);

/**
 * Whether record answers `req`'s `Range` and `If-*` itself, from a whole body fetched without
 * them: a GET's or a HEAD's. Any other method's preconditions go upstream as sent: they guard a
 * change on the origin (a PUT with `If-None-Match: *` must not overwrite), not a body to keep whole.
 */
function readsBody(req: IncomingMessage): boolean {
  return req.method === 'GET' || req.method === 'HEAD';
}

/** The raw header list of a message as name/value pairs, in received order, names as received. */
export function headerPairs(raw: string[]): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push({ name: raw[i], value: raw[i + 1] });
  return out;
}

/** Drops hop-by-hop headers and any named in `Connection`. */
export function withoutHopByHop(headers: Header[]): Header[] {
  const hop = hopByHopNames(headers);
  return headers.filter((h) => !hop.has(h.name.toLowerCase()));
}

/**
 * The request headers record sends upstream to `url`. A request without Host (HTTP/1.0 allows
 * it; run --isolate then knows the name from the address the client resolved) gets `url`'s:
 * Node adds none to a request whose headers are given as a list.
 */
export function upstreamRequestHeaders(req: IncomingMessage, url: URL): Header[] {
  const all = withoutHopByHop(headerPairs(req.rawHeaders));
  const headers = readsBody(req) ? all.filter((h) => !NOT_UPSTREAM.has(h.name.toLowerCase())) : all;
  return headerValue(headers, 'host') === undefined ? [{ name: 'Host', value: url.host }, ...headers] : headers;
}

/** Flattens pairs to the `[name, value, name, value…]` form `writeHead` and `request` accept. */
export function flatHeaders(headers: Header[]): string[] {
  const out: string[] = [];
  for (const h of headers) out.push(h.name, h.value);
  return out;
}

export function headerValue(headers: Header[], name: string): string | undefined {
  const n = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === n)?.value;
}

export function withoutHeaders(headers: Header[], ...names: string[]): Header[] {
  const drop = new Set(names.map((n) => n.toLowerCase()));
  return headers.filter((h) => !drop.has(h.name.toLowerCase()));
}

/** True when the client asked for part of a body or only if it changed: record answers those from the archive. */
export function isPartialOrConditional(req: IncomingMessage): boolean {
  if (!readsBody(req)) return false;
  for (const n of NOT_UPSTREAM) if (req.headers[n] !== undefined) return true;
  return false;
}

/** True when the request carries a body (RFC 9112 §6.3). */
export function hasRequestBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}
