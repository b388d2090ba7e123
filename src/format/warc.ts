/**
 * WARC 1.1 (ISO 28500:2017, https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/)
 * out of a recording: a `warcinfo` record, then per entry a `response` record (status line,
 * headers and body as received) and its `request` record. Bodies are streamed; the record
 * lengths come from the manifest, and a body that does not have its recorded size is an error.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { compareEntries, entryKey } from './manifest';
import { responseHeaders, type ExportSource, type OpenBody } from './har';
import type { Entry, Header } from './types';

const CRLF = '\r\n';
const RFC4648 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 with padding: the customary form of WARC digests (`sha1:`/`sha256:` + base32). */
export function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += RFC4648[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += RFC4648[(value << (5 - bits)) & 31];
  return out.padEnd(Math.ceil(out.length / 8) * 8, '=');
}

/** A WARC-Date: UTC, seconds precision. */
function warcDate(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const recordId = (): string => `<urn:uuid:${randomUUID()}>`;

/** A record's header; HTTP header text is latin1, as Node reads it off the wire. */
function recordHead(fields: Array<[string, string | number]>): Buffer {
  return Buffer.from(`WARC/1.1${CRLF}${fields.map(([n, v]) => `${n}: ${v}${CRLF}`).join('')}${CRLF}`, 'latin1');
}

function httpHead(startLine: string, headers: readonly Header[]): Buffer {
  return Buffer.from(`${startLine}${CRLF}${headers.map((h) => `${h.name}: ${h.value}${CRLF}`).join('')}${CRLF}`, 'latin1');
}

function statusLine(e: Entry): string {
  const r = e.response;
  // The HTTP/1.x status line is the form WARC readers parse; an HTTP/2 answer is written as 1.1.
  const version = /^HTTP\/1\.[01]$/.test(r.httpVersion) ? r.httpVersion : 'HTTP/1.1';
  return `${version} ${r.status} ${r.statusText || STATUS_CODES[r.status] || ''}`.trimEnd();
}

function requestBlock(e: Entry): Buffer {
  const url = new URL(e.request.url);
  const hasHost = e.request.headers.some((h) => h.name.toLowerCase() === 'host');
  const headers = hasHost ? e.request.headers : [{ name: 'Host', value: url.host }, ...e.request.headers];
  return httpHead(`${e.request.method} ${url.pathname}${url.search} HTTP/1.1`, headers);
}

async function* warcRecords(src: ExportSource, openBody: OpenBody, filename: string): AsyncGenerator<Buffer> {
  const date = warcDate(src.recordedAt);
  const infoId = recordId();
  const info = Buffer.from(
    `software: btrfly/${src.creatorVersion ?? '0'}${CRLF}format: WARC File Format 1.1${CRLF}` +
      `conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/${CRLF}` +
      `description: ${src.title}${CRLF}`,
    'utf8',
  );
  yield recordHead([
    ['WARC-Type', 'warcinfo'],
    ['WARC-Record-ID', infoId],
    ['WARC-Date', date],
    ['WARC-Filename', filename],
    ['Content-Type', 'application/warc-fields'],
    ['Content-Length', info.length],
  ]);
  yield info;
  yield Buffer.from(CRLF + CRLF);

  for (const e of [...src.entries].sort(compareEntries)) {
    const responseId = recordId();
    const head = httpHead(statusLine(e), responseHeaders(e, src.volatile));
    const digest = base32(Buffer.from(e.response.content.sha256, 'hex'));
    yield recordHead([
      ['WARC-Type', 'response'],
      ['WARC-Record-ID', responseId],
      ['WARC-Warcinfo-ID', infoId],
      ['WARC-Date', date],
      ['WARC-Target-URI', e.request.url],
      ['WARC-Payload-Digest', `sha256:${digest}`],
      ['Content-Type', 'application/http;msgtype=response'],
      ['Content-Length', head.length + e.response.content.size],
    ]);
    yield head;
    let sent = 0;
    for await (const chunk of openBody(e)) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      sent += bytes.length;
      yield bytes;
    }
    if (sent !== e.response.content.size) {
      throw new BtrflyError(
        'BODY_CORRUPT',
        `body of ${entryKey(e)} has ${sent} bytes where the manifest says ${e.response.content.size}: run "btrfly verify" on the tag`,
      );
    }
    yield Buffer.from(CRLF + CRLF);

    const req = requestBlock(e);
    yield recordHead([
      ['WARC-Type', 'request'],
      ['WARC-Record-ID', recordId()],
      ['WARC-Warcinfo-ID', infoId],
      ['WARC-Concurrent-To', responseId],
      ['WARC-Date', date],
      ['WARC-Target-URI', e.request.url],
      ['Content-Type', 'application/http;msgtype=request'],
      ['Content-Length', req.length],
    ]);
    yield req;
    yield Buffer.from(CRLF + CRLF);
  }
}

/**
 * A recording as an uncompressed WARC 1.1 file, as a byte stream. Request bodies are not
 * kept by btrfly (only their digest), so request records hold the request line and headers.
 * @param filename written in the warcinfo record's `WARC-Filename`.
 */
export function toWarc(src: ExportSource, openBody: OpenBody, filename = 'btrfly.warc'): Readable {
  return Readable.from(warcRecords(src, openBody, filename), { objectMode: false });
}
