/**
 * manifest.json and volatile.json: their one canonical text form, their validation, and the
 * header rules that decide what goes in them (docs/archive-format.md).
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { default as Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { BtrflyError } from '../errors';
import { stripUserinfo } from './lifecycle';
import {
  FORMAT_VERSION,
  type Entry,
  type Header,
  type Manifest,
  type MatchRule,
  type Redactions,
  type VolatileFile,
  type VolatileHeader,
} from './types';

// ---------------------------------------------------------------------------------------
// Canonical form

/** Code-unit order, not locale order: the same bytes sort the same way on every machine. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Order of entries in manifest.json: URL, then method, then ordinal. */
export function compareEntries(a: Entry, b: Entry): number {
  return (
    compareStrings(a.request.url, b.request.url) ||
    compareStrings(a.request.method, b.request.method) ||
    a.ordinal - b.ordinal
  );
}

/** The key of an entry in volatile.json and in messages, e.g. `GET https://x/y #0`. */
export function entryKey(e: { request: { method: string; url: string }; ordinal: number }): string {
  return `${e.request.method} ${e.request.url} #${e.ordinal}`;
}

const sortedUnique = (xs: readonly string[]): string[] => [...new Set(xs)].sort(compareStrings);

/** Names sorted and de-duplicated (query names in lower case when they match in any case); `queryAnyCase` only when set. */
function canonicalRedact(r: Redactions): Redactions {
  const headers = sortedUnique(r.headers.map((h) => h.toLowerCase()));
  const secret = r.secretQuery?.length ? { secretQuery: sortedUnique(r.secretQuery.map((q) => q.toLowerCase())) } : {};
  if (!r.queryAnyCase) return { headers, query: sortedUnique(r.query), ...secret };
  return { headers, query: sortedUnique(r.query.map((q) => q.toLowerCase())), queryAnyCase: true, ...secret };
}
const headerPair = (h: Header): Header => ({ name: h.name, value: h.value });

function canonicalRule(r: MatchRule): MatchRule {
  const out: MatchRule = { host: r.host.toLowerCase() };
  if (r.ignoreQuery?.length) out.ignoreQuery = sortedUnique(r.ignoreQuery);
  if (r.ignoreHeaders?.length) out.ignoreHeaders = sortedUnique(r.ignoreHeaders.map((h) => h.toLowerCase()));
  return out;
}

function canonicalEntry(e: Entry): Entry {
  const { request: q, response: s } = e;
  const c = s.content;
  return {
    request: {
      method: q.method,
      url: q.url,
      // Selecting headers are compared as a set, so their order carries no meaning: sort them.
      headers: q.headers
        .map(headerPair)
        .sort((a, b) => compareStrings(a.name.toLowerCase(), b.name.toLowerCase())),
      ...(q.bodySha256 !== undefined && { bodySha256: q.bodySha256 }),
    },
    ordinal: e.ordinal,
    response: {
      status: s.status,
      statusText: s.statusText,
      httpVersion: s.httpVersion,
      // Response headers keep their received order: playback sends them so.
      headers: s.headers.map(headerPair),
      content: {
        size: c.size,
        mimeType: c.mimeType,
        sha256: c.sha256,
        ...(c.encoding !== undefined && { encoding: c.encoding }),
        storage: c.storage,
        parts: c.parts,
      },
    },
  };
}

/**
 * The one canonical text of a manifest: fixed key order, 2-space indent, trailing newline,
 * entries sorted by URL, method, ordinal; rules and redactions sorted. The same content in
 * any order gives the same bytes, so `git diff` of two recordings shows only real changes.
 */
export function serializeManifest(m: Manifest): string {
  const canonical: Manifest = {
    btrflyFormat: m.btrflyFormat,
    rules: m.rules
      .map(canonicalRule)
      .sort((a, b) => compareStrings(a.host, b.host) || compareStrings(JSON.stringify(a), JSON.stringify(b))),
    redact: canonicalRedact(m.redact),
    entries: m.entries.map(canonicalEntry).sort(compareEntries),
  };
  return JSON.stringify(canonical, null, 2) + '\n';
}

/** The canonical text of volatile.json: keys sorted, empty lists left out, headers by position. */
export function serializeVolatile(v: VolatileFile): string {
  const entries: Record<string, VolatileHeader[]> = {};
  for (const key of Object.keys(v.entries).sort(compareStrings)) {
    const list = v.entries[key];
    if (!list.length) continue;
    entries[key] = [...list].sort((a, b) => a.index - b.index).map((h) => ({ name: h.name, value: h.value, index: h.index }));
  }
  return JSON.stringify({ btrflyFormat: v.btrflyFormat, entries }, null, 2) + '\n';
}

// ---------------------------------------------------------------------------------------
// Parsing and validation

let validators: { ajv: Ajv; id: string; manifest: ValidateFunction; volatile: ValidateFunction } | undefined;

/** Compiled once, on first use. The schema ships in docs/ (in the npm package too), two levels above src/format and dist/format. */
function getValidators(): { ajv: Ajv; id: string; manifest: ValidateFunction; volatile: ValidateFunction } {
  if (!validators) {
    const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', 'docs', 'manifest.schema.json'), 'utf8'));
    // Loaded here, not at the top: most commands (`btrfly start`, `stop`, `status`…) never validate a manifest.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const AjvClass = (require('ajv') as typeof import('ajv')).default;
    const ajv = new AjvClass({ allErrors: false, strict: true });
    const manifest = ajv.compile(schema);
    const volatile = ajv.compile({ $ref: `${schema.$id}#/definitions/volatileFile` });
    validators = { ajv, id: schema.$id as string, manifest, volatile };
  }
  return validators;
}

/**
 * A checker for data that will end up in a manifest (a session request's rules, say):
 * `schema(ref)` may point into the manifest schema with `ref('rule')` so that what is
 * accepted is exactly what a manifest may hold. The checker returns the first problem as
 * a short phrase (`/rules/0/host must NOT have fewer than 1 characters`), or undefined.
 */
export function schemaChecker(schema: (ref: (definition: string) => object) => object): (value: unknown) => string | undefined {
  const { ajv, id } = getValidators();
  const validate = ajv.compile(schema((definition) => ({ $ref: `${id}#/definitions/${definition}` })));
  return (value) => (validate(value) ? undefined : describeSchemaError(validate.errors![0]));
}

function invalid(where: string, what: string, cause?: unknown): BtrflyError {
  return new BtrflyError(
    'MANIFEST_INVALID',
    `manifest of ${where} is invalid: ${what}: the recording was not written by btrfly or was edited; re-record the tag or restore the file from git history`,
    { cause, data: { where } },
  );
}

function describeSchemaError(e: ErrorObject): string {
  const path = e.instancePath || '/';
  if (e.keyword === 'additionalProperties') return `${path}: unexpected property "${String(e.params.additionalProperty)}"`;
  if (e.keyword === 'enum') return `${path} ${e.message}: ${JSON.stringify(e.params.allowedValues)}`;
  return `${path} ${e.message ?? 'is not valid'}`;
}

function parseChecked<T>(text: string, where: string, file: string, validate: ValidateFunction): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw invalid(where, `${file} is not JSON (${(e as Error).message})`, e);
  }
  const version = (data as { btrflyFormat?: unknown } | null)?.btrflyFormat;
  if (typeof version === 'number' && version > FORMAT_VERSION) {
    throw new BtrflyError(
      'MANIFEST_INVALID',
      `${file} of ${where} has btrflyFormat ${version}, written by a newer btrfly (this one reads up to ${FORMAT_VERSION}): upgrade btrfly`,
      { data: { where, btrflyFormat: version } },
    );
  }
  if (!validate(data)) throw invalid(where, `${file} ${describeSchemaError(validate.errors![0])}`);
  return data as T;
}

/**
 * Parses and validates manifest.json against docs/manifest.schema.json.
 * @param where what the user knows the manifest as, e.g. `tag "x" at 1a2b3c4`; named in errors.
 * @throws BtrflyError MANIFEST_INVALID naming where and what is wrong.
 */
export function parseManifest(text: string, where: string): Manifest {
  return parseChecked<Manifest>(text, where, 'manifest.json', getValidators().manifest);
}

/** Parses and validates volatile.json; same errors as {@link parseManifest}. */
export function parseVolatile(text: string, where: string): VolatileFile {
  return parseChecked<VolatileFile>(text, where, 'volatile.json', getValidators().volatile);
}

/** An empty manifest carrying the given rules and redactions. */
export function emptyManifest(rules: MatchRule[] = [], redact: Redactions = { headers: [], query: [] }): Manifest {
  return { btrflyFormat: FORMAT_VERSION, rules, redact, entries: [] };
}

// ---------------------------------------------------------------------------------------
// Which headers go where

/**
 * Response headers that differ on every fetch of the same resource. They are stored in
 * volatile.json rather than in the manifest (and played back all the same), so that a
 * re-recording's diff shows only real changes. Validators (`ETag`, `Last-Modified`) are
 * not here: they change only when the content does. See docs/archive-format.md.
 */
export const VOLATILE_HEADERS: readonly string[] = [
  'date',
  'age',
  'expires',
  'set-cookie',
  'x-request-id',
  'request-id',
  'x-correlation-id',
  'x-trace-id',
  'traceparent',
  'x-cloud-trace-context',
  'x-amzn-requestid',
  'x-amzn-trace-id',
  'x-amz-request-id',
  'x-amz-id-2',
  'x-amz-cf-id',
  'x-amz-cf-pop',
  'cf-ray',
  'cf-cache-status',
  'x-served-by',
  'x-cache',
  'x-cache-hits',
  'x-cache-status',
  'x-timer',
  'x-fastly-request-id',
  'x-github-request-id',
  'x-vercel-id',
  'x-vercel-cache',
  'fly-request-id',
  'x-nf-request-id',
  'x-azure-ref',
  'x-msedge-ref',
  'x-ms-request-id',
  'x-runtime',
  'x-response-time',
  'server-timing',
];
const VOLATILE = new Set(VOLATILE_HEADERS);

/** Hop-by-hop headers (RFC 9110 section 7.6.1), plus the legacy `Proxy-Connection`. */
export const HOP_BY_HOP_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/** Request headers that carry credentials: always stored as `[redacted]`. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization'];

/** What a redacted header value is stored as; matches any value in playback. */
export const REDACTED = '[redacted]';

/** Comma-separated header tokens, lower case (`Vary`, `Connection`). */
export function headerTokens(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

const FIXED_HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP_HEADERS);

/** The hop-by-hop headers of a message: the fixed list and any named in its `Connection` header. */
export function hopByHopNames(raw: readonly Header[]): ReadonlySet<string> {
  // A new set only when `Connection` names more than the fixed list (three calls a recorded request).
  let names: Set<string> | undefined;
  for (const h of raw) {
    if (h.name.toLowerCase() !== 'connection') continue;
    for (const t of headerTokens(h.value)) if (!FIXED_HOP_BY_HOP.has(t)) (names ??= new Set(HOP_BY_HOP_HEADERS)).add(t);
  }
  return names ?? FIXED_HOP_BY_HOP;
}

/**
 * Splits received response headers into those kept in the manifest and the volatile ones
 * (with their position, so {@link mergeHeaders} restores the received order). Hop-by-hop
 * headers are dropped from both.
 */
export function splitHeaders(raw: readonly Header[]): { kept: Header[]; volatile: VolatileHeader[] } {
  const hop = hopByHopNames(raw);
  const kept: Header[] = [];
  const volatile: VolatileHeader[] = [];
  let index = 0;
  for (const h of raw) {
    const lower = h.name.toLowerCase();
    if (hop.has(lower)) continue;
    if (VOLATILE.has(lower)) volatile.push({ name: h.name, value: h.value, index });
    else kept.push({ name: h.name, value: h.value });
    index++;
  }
  return { kept, volatile };
}

/** The received header list again, from the manifest's headers and volatile.json's. */
export function mergeHeaders(kept: readonly Header[], volatile: readonly VolatileHeader[]): Header[] {
  const out: Header[] = [];
  const byIndex = [...volatile].sort((a, b) => a.index - b.index);
  let k = 0;
  for (const v of byIndex) {
    while (out.length < v.index && k < kept.length) out.push(headerPair(kept[k++]));
    out.push({ name: v.name, value: v.value });
  }
  while (k < kept.length) out.push(headerPair(kept[k++]));
  return out;
}

/**
 * The request headers to store with an entry: `Accept`, those named by the response's `Vary`,
 * and `Accept-Encoding` when the response has a `Content-Encoding` (playback sends the coded
 * bytes as they are to the same `Accept-Encoding`, whether or not the origin said it varies on
 * it); names in lower case, sorted; credentials replaced by {@link REDACTED}.
 */
export function selectingRequestHeaders(
  reqHeaders: readonly Header[],
  responseVary: string | undefined,
  redact: Redactions,
  contentEncoding?: string,
): Header[] {
  const coded = contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity';
  const selecting = new Set(['accept', ...(coded ? ['accept-encoding'] : []), ...headerTokens(responseVary).filter((t) => t !== '*')]);
  const secret = new Set([...CREDENTIAL_HEADERS, ...redact.headers.map((h) => h.toLowerCase())]);
  return reqHeaders
    .map((h) => ({ name: h.name.toLowerCase(), value: h.value }))
    .filter((h) => selecting.has(h.name))
    .map((h) => (secret.has(h.name) ? { name: h.name, value: REDACTED } : h))
    .sort((a, b) => compareStrings(a.name, b.name));
}

/** The prefix of a query value redacted as a keyed hash (`--redact-query`). */
export const HMAC_PREFIX = 'btrfly-hmac:';

/** What the value of a parameter of `redact.secretQuery` is stored as; matches any value in playback. */
export const REDACTED_QUERY_VALUE = 'btrfly-redacted';

/**
 * Query parameters that carry secrets, stored as {@link REDACTED_QUERY_VALUE} by every
 * recording (in any case); `--keep-query NAME` keeps one in clear. Why each is here, and why
 * some look-alikes are not: docs/decisions.md, "Secret query parameters by default".
 */
export const SECRET_QUERY_PARAMS: readonly string[] = [
  'access_token', 'api-key', 'api_key', 'apikey', 'auth', 'auth_token', 'awsaccesskeyid', 'client_secret',
  'googleaccessid', 'id_token', 'jwt', 'key', 'passwd', 'password', 'private_token', 'pwd', 'refresh_token',
  'secret', 'sig', 'signature', 'token', 'x-amz-credential', 'x-amz-security-token', 'x-amz-signature',
  'x-goog-credential', 'x-goog-signature',
];

/**
 * The redactions of a new recording: `base` (the previous recording's, on append), the extra
 * `headers`, the extra `query` names (a keyed hash), and the default secret query names but
 * those in `keep` or `query` (a placeholder), all of them matched in any case.
 * @param carried the entries an append keeps from the previous recording
 * @throws BtrflyError USAGE when `keep` names a parameter `base` redacts, or a carried entry
 *   holds in clear a parameter that is now redacted (it could never match again)
 */
export function recordingRedactions(
  tag: string,
  base: Redactions,
  opts: { headers?: readonly string[]; query?: readonly string[]; keep?: readonly string[]; carried?: readonly Entry[] } = {},
): Redactions {
  const lower = (xs: readonly string[] = []) => xs.map((x) => x.toLowerCase());
  const keep = new Set(lower(opts.keep));
  const baseQuery = lower(base.query);
  const baseSecret = lower(base.secretQuery);
  const kept = [...baseQuery, ...baseSecret].find((n) => keep.has(n));
  if (kept) {
    throw new BtrflyError('USAGE', `--keep-query ${kept}: tag "${tag}" redacts it, so an --append must too: record the tag again without --append to keep it in clear`);
  }
  const query = [...new Set([...baseQuery, ...lower(opts.query)])].sort(compareStrings);
  const hashed = new Set(query);
  // A name the tag already stores as a placeholder stays one: its carried entries match only so.
  const secretQuery = [...new Set([...baseSecret, ...SECRET_QUERY_PARAMS.filter((n) => !keep.has(n) && !hashed.has(n))])].sort(compareStrings);
  const wanted = new Set([...query, ...secretQuery]);
  for (const e of opts.carried ?? []) {
    const clear = queryPairs(e.request.url).find(([name, value]) => wanted.has(name.toLowerCase()) && !value.startsWith(HMAC_PREFIX) && value !== REDACTED_QUERY_VALUE);
    if (clear) {
      throw new BtrflyError(
        'USAGE',
        `tag "${tag}" holds query parameter "${clear[0]}" in clear (recorded before btrfly redacted it): record the tag again without --append, or keep it in clear with --keep-query ${clear[0].toLowerCase()}`,
      );
    }
  }
  return { headers: [...new Set([...base.headers, ...lower(opts.headers)])].sort(compareStrings), query, queryAnyCase: true, secretQuery };
}

/** The decoded names and raw values of a URL's query. */
function queryPairs(url: string): Array<[string, string]> {
  const q = url.indexOf('?');
  if (q < 0) return [];
  const hash = url.indexOf('#', q);
  return url
    .slice(q + 1, hash < 0 ? url.length : hash)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return [decodeQueryPart(eq < 0 ? pair : pair.slice(0, eq)), eq < 0 ? '' : pair.slice(eq + 1)];
    });
}

type RedactedNames = { anyCase: boolean; wanted: ReadonlySet<string>; secret: ReadonlySet<string> };
const namesOf = new WeakMap<object, RedactedNames>();

/** The name sets of a recording's redactions, made once per redactions object (every request with a query reads them). */
function nameSets(redact: Pick<Redactions, 'query' | 'queryAnyCase' | 'secretQuery'>): RedactedNames {
  let sets = namesOf.get(redact);
  if (!sets) {
    const anyCase = redact.queryAnyCase === true;
    sets = { anyCase, wanted: new Set(anyCase ? redact.query.map((n) => n.toLowerCase()) : redact.query), secret: new Set(redact.secretQuery) };
    namesOf.set(redact, sets);
  }
  return sets;
}

/** Whether a recording's URLs hold redacted query values, which a request's URL must be redacted like before it is matched. */
export function redactsQuery(redact: Pick<Redactions, 'query' | 'secretQuery'>): boolean {
  return redact.query.length > 0 || (redact.secretQuery?.length ?? 0) > 0;
}

/**
 * Replaces the values of the query parameters `redact.query` names by `btrfly-hmac:<hex>`, an
 * HMAC-SHA256 of the value as sent, keyed with the user's key (matched as a hash), and those
 * `redact.secretQuery` names by {@link REDACTED_QUERY_VALUE} (matched whatever the value):
 * never stored in clear. A `user:password@` is dropped (never stored, never matched on). The
 * rest of the URL is left byte for byte as it was.
 */
export function redactUrl(original: string, redact: Pick<Redactions, 'query' | 'queryAnyCase' | 'secretQuery'>, key: Buffer): string {
  const url = stripUserinfo(original);
  const q = url.indexOf('?');
  if (q < 0 || !redactsQuery(redact)) return url;
  const { anyCase, wanted, secret } = nameSets(redact);
  const hash = url.indexOf('#', q);
  const end = hash < 0 ? url.length : hash;
  const params = url
    .slice(q + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      const name = decodeQueryPart(rawName);
      if (secret.has(name.toLowerCase())) return `${rawName}=${REDACTED_QUERY_VALUE}`;
      if (!wanted.has(anyCase ? name.toLowerCase() : name)) return pair;
      const value = eq < 0 ? '' : pair.slice(eq + 1);
      // Already a hash: a client following a recorded Location (redactHeaderUrls) sends it back as is.
      if (value.startsWith(HMAC_PREFIX)) return pair;
      return `${rawName}=${HMAC_PREFIX}${createHmac('sha256', key).update(value).digest('hex')}`;
    });
  return url.slice(0, q + 1) + params.join('&') + url.slice(end);
}

/** Response headers whose value is a URL a client follows or keeps. */
const URL_HEADERS = new Set(['location', 'content-location']);

/**
 * The response headers to store: a `Location` or `Content-Location` redacted as a request URL
 * is ({@link redactUrl}), so that a redirect to a signed URL keeps no token in the archive. In
 * playback the client follows the redacted URL, which then matches the recorded request as is.
 */
export function redactHeaderUrls(headers: readonly Header[], redact: Pick<Redactions, 'query' | 'queryAnyCase' | 'secretQuery'>, key: Buffer): Header[] {
  return headers.map((h) => (URL_HEADERS.has(h.name.toLowerCase()) ? { name: h.name, value: redactUrl(h.value, redact, key) } : h));
}

/** Decodes a query name or value as a form would (`+` is a space); malformed escapes stay as they are. */
export function decodeQueryPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}
