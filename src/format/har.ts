/**
 * HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) out of and into a recording.
 * Export streams: the JSON text is emitted entry by entry and each body is base64-encoded
 * chunk by chunk, so a large body never sits whole in memory. Import parses with JSON.parse,
 * so a HAR file must fit in one JavaScript string (about 512 MiB); bodies are then decoded
 * chunk by chunk into streams.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { compareEntries, decodeQueryPart, entryKey, mergeHeaders } from './manifest';
import type { Entry, Header, MatchRule, Redactions, VolatileFile } from './types';

/** Opens the bytes of an entry's response body, as recorded (Content-Encoding kept). */
export type OpenBody = (entry: Entry) => Readable;

/** What an export needs from a recording; no git, so any storage can provide it. */
export interface ExportSource {
  entries: readonly Entry[];
  volatile?: VolatileFile;
  /** When the recording was made (its commit date): every entry's `startedDateTime` / `WARC-Date`. */
  recordedAt: Date;
  /** e.g. `example1@1a2b3c4`. */
  title: string;
  creatorVersion?: string;
  /**
   * The recording's matching rules and redactions: a HAR of btrfly's carries them (`_btrflyRules`,
   * `_btrflyRedact` in `log`), so that an import plays back as the recording did.
   */
  rules?: MatchRule[];
  redact?: Redactions;
}

/** The full received response headers of an entry, volatile ones put back in place. */
export function responseHeaders(e: Entry, volatile?: VolatileFile): Header[] {
  return mergeHeaders(e.response.headers, volatile?.entries[entryKey(e)] ?? []);
}

/** HAR `queryString`: the query's name/value pairs, decoded, in order. */
function queryString(url: string): Array<{ name: string; value: string }> {
  const q = url.indexOf('?');
  if (q < 0) return [];
  return url
    .slice(q + 1)
    .split('&')
    .filter((p) => p.length > 0)
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0
        ? { name: decodeQueryPart(pair), value: '' }
        : { name: decodeQueryPart(pair.slice(0, eq)), value: decodeQueryPart(pair.slice(eq + 1)) };
    });
}

/**
 * Base64 of a byte stream, chunk by chunk: a remainder of fewer than 3 bytes is carried to
 * the next chunk so that the pieces join into one valid base64 text.
 */
export async function* base64Chunks(body: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let carry = Buffer.alloc(0);
  for await (const chunk of body) {
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (carry.length) {
      const group = Buffer.alloc(Math.min(3, carry.length + bytes.length));
      carry.copy(group);
      bytes.copy(group, carry.length, 0, group.length - carry.length);
      bytes = bytes.subarray(group.length - carry.length);
      carry = group;
      if (group.length < 3) continue;
      yield group.toString('base64');
    }
    const whole = bytes.length - (bytes.length % 3);
    if (whole) yield bytes.subarray(0, whole).toString('base64');
    carry = Buffer.from(bytes.subarray(whole));
  }
  if (carry.length) yield carry.toString('base64');
}

function harEntry(e: Entry, src: ExportSource, textMark: string): unknown {
  const status = e.response;
  const location = status.headers.find((h) => h.name.toLowerCase() === 'location')?.value ?? '';
  return {
    startedDateTime: src.recordedAt.toISOString(),
    time: 0,
    request: {
      method: e.request.method,
      url: e.request.url,
      httpVersion: status.httpVersion,
      cookies: [],
      headers: e.request.headers,
      queryString: queryString(e.request.url),
      headersSize: -1,
      bodySize: e.request.bodySha256 ? -1 : 0,
    },
    response: {
      status: status.status,
      statusText: status.statusText,
      httpVersion: status.httpVersion,
      cookies: [],
      headers: responseHeaders(e, src.volatile),
      content: {
        size: status.content.size,
        mimeType: status.content.mimeType,
        ...(status.content.size > 0 ? { text: textMark, encoding: 'base64' } : { text: '' }),
        // HAR's text is normally decoded; btrfly's holds the bytes as received, so say so.
        _btrflyWireBytes: true,
        _sha256: status.content.sha256,
      },
      redirectURL: location,
      headersSize: -1,
      bodySize: status.content.size,
    },
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, send: 0, wait: 0, receive: 0, ssl: -1 },
    _btrflyOrdinal: e.ordinal,
    ...(e.request.bodySha256 && { _btrflyRequestBodySha256: e.request.bodySha256 }),
  };
}

async function* harText(src: ExportSource, openBody: OpenBody): AsyncGenerator<string> {
  const mark = `btrfly-body-${randomUUID()}`;
  const creator = { name: 'btrfly', version: src.creatorVersion ?? '0' };
  yield `{\n "log": {\n  "version": "1.2",\n  "creator": ${JSON.stringify(creator)},\n  "pages": [],\n`;
  yield `  "comment": ${JSON.stringify(src.title)},\n`;
  if (src.rules?.length) yield `  "_btrflyRules": ${JSON.stringify(src.rules)},\n`;
  const r = src.redact;
  if (r && (r.headers.length || r.query.length || r.secretQuery?.length || r.queryAnyCase)) yield `  "_btrflyRedact": ${JSON.stringify(r)},\n`;
  yield '  "entries": [';
  const entries = [...src.entries].sort(compareEntries);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const [before, after] = JSON.stringify(harEntry(e, src, mark)).split(`"${mark}"`);
    yield (i ? ',\n  ' : '\n  ') + before;
    if (after !== undefined) {
      yield '"';
      yield* base64Chunks(openBody(e));
      yield '"' + after;
    }
  }
  yield '\n  ]\n }\n}\n';
}

/**
 * A recording as a HAR 1.2 document that browser devtools open, as a stream of its text.
 * Bodies are inline in base64, read through `openBody` one at a time.
 */
export function toHar(src: ExportSource, openBody: OpenBody): Readable {
  return Readable.from(harText(src, openBody), { objectMode: false });
}

/** One entry read from a HAR file, its body as a stream of bytes. */
export interface ImportedEntry {
  request: { method: string; url: string; headers: Header[]; bodySha256?: string };
  response: { status: number; statusText: string; httpVersion: string; headers: Header[]; mimeType: string };
  /** The ordinal a btrfly export gave it; absent in other HARs (assign with an OrdinalCounter). */
  ordinal?: number;
  startedDateTime?: string;
  /** False when the HAR holds no body text (browsers may leave bodies out). */
  hasBody: boolean;
  /** Byte length of the body. */
  size: number;
  /** The body's bytes, decoded from the HAR's base64 or text a slice at a time. */
  openBody(): Readable;
}

export interface ImportedHar {
  creator?: string;
  entries: ImportedEntry[];
  /** A btrfly HAR's matching rules and redactions (unchecked: the importer checks them against the manifest schema). */
  rules?: unknown;
  redact?: unknown;
}

interface HarHeader {
  name: string;
  value: string;
}
interface HarEntryJson {
  startedDateTime?: string;
  request: { method: string; url: string; httpVersion?: string; headers?: HarHeader[]; postData?: { text?: string } };
  response: {
    status: number;
    statusText?: string;
    httpVersion?: string;
    headers?: HarHeader[];
    content?: { size?: number; mimeType?: string; text?: string; encoding?: string; _btrflyWireBytes?: boolean };
  };
  _btrflyOrdinal?: number;
  _btrflyRequestBodySha256?: string;
}

function importError(where: string, what: string): BtrflyError {
  return new BtrflyError('IMPORT', `${where} is not a HAR 1.2 file: ${what}: export it again as HAR with content and retry`, {
    data: { file: where },
  });
}

async function readText(input: Readable): Promise<string> {
  input.setEncoding('utf8');
  let text = '';
  for await (const chunk of input) text += chunk as string;
  return text;
}

/** Slices of a base64 text, cut on 4-character boundaries, decoded one at a time. */
function* base64Slices(b64: string): Generator<Buffer> {
  const clean = /\s/.test(b64) ? b64.replace(/\s+/g, '') : b64;
  const step = 4 * 64 * 1024;
  for (let i = 0; i < clean.length; i += step) yield Buffer.from(clean.slice(i, i + step), 'base64');
}

/** Slices of a text as UTF-8, never cutting a surrogate pair in two. */
function* textSlices(text: string): Generator<Buffer> {
  const step = 64 * 1024;
  for (let i = 0; i < text.length; ) {
    let end = Math.min(i + step, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield Buffer.from(text.slice(i, end), 'utf8');
    i = end;
  }
}

function base64Size(b64: string): number {
  const clean = /\s/.test(b64) ? b64.replace(/\s+/g, '') : b64;
  const pad = clean.endsWith('==') ? 2 : clean.endsWith('=') ? 1 : 0;
  return Math.floor((clean.length * 3) / 4) - pad;
}

/**
 * A HAR header list: an array of `{name, value}`, absent when the HAR leaves it out. HTTP/2
 * pseudo-headers (`:authority`...) are left out; a list that is not an array, or a header
 * without a name, is a file btrfly cannot read.
 */
function harHeaders(list: unknown, at: string, where: string): Header[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw importError(where, `${at} headers are not a list of {"name", "value"}`);
  const out: Header[] = [];
  for (const h of list as unknown[]) {
    const name = (h as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || name === '') throw importError(where, `${at} has a header without a name`);
    if (!name.startsWith(':')) out.push({ name, value: String((h as { value?: unknown }).value ?? '') });
  }
  return out;
}

function importEntry(e: HarEntryJson, i: number, where: string): ImportedEntry {
  const at = `entry ${i}`;
  if (!e || typeof e !== 'object' || !e.request || !e.response) throw importError(where, `${at} has no request or response`);
  if (typeof e.request.method !== 'string' || typeof e.request.url !== 'string') throw importError(where, `${at} has no request method or URL`);
  if (!Number.isInteger(e.response.status)) throw importError(where, `${at} has no response status`);
  const content = e.response.content ?? {};
  const wire = content._btrflyWireBytes === true;
  // A HAR from a browser holds the decoded body: the headers that described the encoded one no longer apply.
  const drop = wire ? new Set<string>() : new Set(['content-encoding', 'content-length']);
  const headers = harHeaders(e.response.headers, `${at} response`, where).filter((h) => !drop.has(h.name.toLowerCase()));
  const text = typeof content.text === 'string' ? content.text : undefined;
  // HAR 1.2 knows one encoding of `text`, base64; bytes decoded another way would be stored wrong without a word.
  if (text !== undefined && content.encoding !== undefined && content.encoding !== '' && content.encoding !== 'base64')
    throw importError(where, `${at} has a response body in encoding ${JSON.stringify(content.encoding)}, not base64 or plain text`);
  const isBase64 = content.encoding === 'base64';
  // Buffer.from(…, 'base64') skips what is not base64 and would store those bytes as the body, without a word.
  if (isBase64 && text !== undefined && !/^[\w+/-]*={0,2}$/.test(/\s/.test(text) ? text.replace(/\s+/g, '') : text))
    throw importError(where, `${at} has a response body marked base64 that is not base64`);
  const postText = e.request.postData?.text;
  const bodySha256 =
    e._btrflyRequestBodySha256 ?? (typeof postText === 'string' ? createHash('sha256').update(postText).digest('hex') : undefined);
  return {
    request: {
      method: e.request.method,
      url: e.request.url,
      headers: harHeaders(e.request.headers, `${at} request`, where),
      ...(bodySha256 && { bodySha256 }),
    },
    response: {
      status: e.response.status,
      statusText: e.response.statusText ?? '',
      httpVersion: e.response.httpVersion || e.request.httpVersion || 'HTTP/1.1',
      headers,
      mimeType: content.mimeType ?? '',
    },
    ...(Number.isInteger(e._btrflyOrdinal) && { ordinal: e._btrflyOrdinal }),
    ...(e.startedDateTime && { startedDateTime: e.startedDateTime }),
    hasBody: text !== undefined,
    size: text === undefined ? 0 : isBase64 ? base64Size(text) : Buffer.byteLength(text),
    openBody: () => Readable.from(text === undefined ? [] : isBase64 ? base64Slices(text) : textSlices(text)),
  };
}

/**
 * Reads a HAR file (a stream of its text) into entries whose bodies are streams, for an
 * importer to store with a BodyWriter. The whole HAR text is parsed at once (see the top of
 * this file for the size limit).
 * @param where the file's name, for messages.
 * @throws BtrflyError IMPORT naming the file and what is wrong.
 */
export async function fromHar(input: Readable, where: string): Promise<ImportedHar> {
  let doc: { log?: { creator?: { name?: string; version?: string }; entries?: unknown; _btrflyRules?: unknown; _btrflyRedact?: unknown } };
  // Some Windows tools write a byte order mark first, which JSON.parse refuses (RFC 8259 §8.1 lets a reader skip it).
  const text = (await readText(input)).replace(/^\ufeff/, '');
  if (text.startsWith('WARC/')) {
    throw new BtrflyError('IMPORT', `${where} is a WARC file: btrfly import reads HAR only: import a HAR of it (from "btrfly export T --format har", or a WARC-to-HAR tool)`, {
      data: { file: where },
    });
  }
  try {
    doc = JSON.parse(text);
  } catch (e) {
    if (e instanceof SyntaxError) throw importError(where, `it is not JSON (${e.message})`);
    throw e;
  }
  const log = doc?.log;
  if (!log || !Array.isArray(log.entries)) throw importError(where, 'it has no log.entries');
  const creator = log.creator?.name ? `${log.creator.name} ${log.creator.version ?? ''}`.trim() : undefined;
  return {
    ...(creator && { creator }),
    entries: (log.entries as HarEntryJson[]).map((e, i) => importEntry(e, i, where)),
    ...(log._btrflyRules !== undefined && { rules: log._btrflyRules }),
    ...(log._btrflyRedact !== undefined && { redact: log._btrflyRedact }),
  };
}
