import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import fresh from 'fresh';
import Negotiator from 'negotiator';
import rangeParser from 'range-parser';
import { BtrflyError } from '../../errors';
import { lendsBuffers } from '../../format/checked-cache-reader';
import { EMPTY_SHA256, repairAdvice, type BodyLocation, type BodyStore, type ByteRange, type Entry, type Header } from '../../format/types';
import { flatHeaders, headerValue, withoutHeaders } from './http-util';
import { noteStreamed } from './memory';

/** What serving a recorded response needs besides the store: its entry, its full header list, and where its body is. */
export interface RecordedAnswer {
  entry: Entry;
  /** Recorded headers with the volatile ones merged back in received order. */
  headers: Header[];
  body: BodyLocation | undefined;
}

/** Headers a 304 carries over from the full response (RFC 9110 §15.4.5). */
const NOT_MODIFIED_KEEP = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']);

const DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
  zstd: () => zlib.createZstdDecompress(),
};

/**
 * Sends a recorded response to a client as HTTP would have: `304` for a conditional request
 * whose validators match, `206`/`416` for a `Range`, the decoded body when the recorded
 * `Content-Encoding` is one the client does not accept, otherwise the recorded status,
 * headers and bytes, read from `bodies`. `count` hears of body bytes as they go out, so a client
 * that hangs up before the end is still counted for what it got.
 */
export async function sendRecorded(req: IncomingMessage, res: ServerResponse, answer: RecordedAnswer, bodies: BodyStore, count: (bytes: number) => void): Promise<void> {
  const { entry } = answer;
  // The recorded Date (volatile.json), or none where the origin sent none: not this run's clock.
  res.sendDate = false;
  const status = entry.response.status;
  const size = entry.response.content.size;
  let headers = withoutHeaders(answer.headers, 'content-length', 'transfer-encoding');
  const noBody = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);

  if (status === 200 && (req.method === 'GET' || req.method === 'HEAD') && isFresh(req, headers)) {
    res.writeHead(304, flatHeaders(headers.filter((h) => NOT_MODIFIED_KEEP.has(h.name.toLowerCase()))));
    res.end();
    return;
  }

  const encoding = entry.response.content.encoding;
  if (encoding && !noBody && !sendsCoded(req, entry, encoding)) {
    const decoder = DECODERS[encoding.toLowerCase()];
    if (decoder) {
      if (!answer.body) throw missingBody(entry);
      headers = withoutHeaders(headers, 'content-encoding', 'etag', 'accept-ranges');
      res.writeHead(status, entry.response.statusText, flatHeaders(headers));
      // The bytes are checked before they reach the decoder: one that fails was recorded (or
      // edited) under an encoding they are not in.
      const decoding = decoder();
      let failed: Error | undefined;
      decoding.once('error', (e) => (failed = e));
      return streamCounting(bodies.openBody(answer.body), res, count, undefined, decoding).catch((e: unknown) => {
        throw failed && e === failed ? notDecodable(encoding, failed) : e;
      });
    }
  }

  const range = status === 200 && req.method === 'GET' ? requestedRange(req, headers, size) : undefined;
  if (range === 'unsatisfiable') {
    res.writeHead(416, flatHeaders([...withoutHeaders(headers, 'content-type', 'content-encoding'), { name: 'Content-Range', value: `bytes */${size}` }, { name: 'Content-Length', value: '0' }]));
    res.end();
    return;
  }
  if (range) {
    const out = [
      ...headers,
      { name: 'Content-Range', value: `bytes ${range.start}-${range.end}/${size}` },
      { name: 'Content-Length', value: String(range.end - range.start + 1) },
    ];
    res.writeHead(206, 'Partial Content', flatHeaders(out));
    if (!answer.body) throw missingBody(entry);
    return streamCounting(bodies.openBody(answer.body, range), res, count, range.end - range.start + 1);
  }

  // A recorded HEAD has no body (size 0): its Content-Length is the one the origin sent, kept in the headers.
  const length = (entry.request.method === 'HEAD' ? headerValue(answer.headers, 'content-length') : undefined) ?? String(size);
  const out = noBody && req.method !== 'HEAD' ? headers : [...headers, { name: 'Content-Length', value: length }];
  res.writeHead(status, entry.response.statusText, flatHeaders(out));
  if (noBody) {
    res.end();
    return;
  }
  if (size === 0) {
    // Nothing to read and check: the manifest's digest must be that of no bytes, else the
    // entry says "empty" of a body that is not (an edited manifest) and the answer breaks off.
    if (entry.response.content.sha256 !== EMPTY_SHA256) throw emptyButNotEmpty(entry);
    res.end();
    return;
  }
  if (!answer.body) throw missingBody(entry);
  const small = bodies.readSmallBody(answer.body);
  if (small) return sendWhole(await small, res, count);
  return streamCounting(bodies.openBody(answer.body), res, count, size);
}

/**
 * Sends a body held in one buffer with one write: no stream, pipeline or abort controller per
 * response (each `pipeline` makes a DOMException when it settles, ~0.03 ms; docs/notes/small-files.md).
 */
async function sendWhole(body: Buffer, res: ServerResponse, count: (bytes: number) => void): Promise<void> {
  count(body.length);
  noteStreamed(body.length);
  res.end(body);
  await finished(res);
}

function isFresh(req: IncomingMessage, headers: Header[]): boolean {
  if (!req.headers['if-none-match'] && !req.headers['if-modified-since']) return false;
  return fresh(req.headers, { etag: headerValue(headers, 'etag'), 'last-modified': headerValue(headers, 'last-modified') });
}

/**
 * Whether the client gets a body recorded under `encoding` as it is (else decoded). Asked with
 * the `Accept-Encoding` the recording's client sent: yes, it is what the origin answered that
 * (an origin that codes whatever it is asked, `identity` included). Asked with another: when
 * the client accepts the coding; a client that sends none accepts any (RFC 9110 §12.5.3) but an
 * origin that negotiated sends it none, so it gets the coding only if record's client sent none either.
 */
function sendsCoded(req: IncomingMessage, entry: Entry, encoding: string): boolean {
  // Node joins repeated Accept-Encoding lines with ", ", as allValues does the recorded ones.
  const asked = req.headers['accept-encoding'];
  const recorded = allValues(entry.request.headers, 'accept-encoding');
  if (asked === recorded) return true;
  if (asked === undefined) return false;
  return new Negotiator(req).encodings([encoding]).length > 0;
}

/** Every value of a header, joined as HTTP folds them; undefined when absent. */
function allValues(headers: readonly Header[], name: string): string | undefined {
  const values = headers.filter((h) => h.name.toLowerCase() === name).map((h) => h.value);
  return values.length ? values.join(', ') : undefined;
}

/** The single range to send, `unsatisfiable`, or undefined for the whole body (also for multi-range requests). */
function requestedRange(req: IncomingMessage, headers: Header[], size: number): ByteRange | 'unsatisfiable' | undefined {
  const header = req.headers.range;
  if (!header) return undefined;
  const ifRange = req.headers['if-range'] as string | undefined;
  if (ifRange) {
    const etag = headerValue(headers, 'etag');
    const lastModified = headerValue(headers, 'last-modified');
    const matches = ifRange.startsWith('"') || ifRange.startsWith('W/') ? ifRange === etag : ifRange === lastModified;
    if (!matches) return undefined;
  }
  const parsed = rangeParser(size, header, { combine: true });
  if (parsed === -1) return 'unsatisfiable';
  if (parsed === -2 || parsed.type !== 'bytes' || parsed.length !== 1) return undefined;
  return { start: parsed[0].start, end: parsed[0].end };
}

/**
 * Streams `body` to the client, counting what it is handed. `length` is the Content-Length sent:
 * a client that hangs up once it has that many bytes (curl closes at Content-Length, which can be
 * before the body's stream has ended here) got its whole answer, and that is not a failure.
 */
async function streamCounting(body: Readable, res: ServerResponse, count: (bytes: number) => void, length: number | undefined, ...through: Transform[]): Promise<void> {
  let sent = 0;
  const counting = (bytes: number): void => {
    sent += bytes;
    count(bytes);
  };
  try {
    if (through.length === 0 && lendsBuffers(body)) return await sendLent(body, body.lend(), res, counting);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        counting(chunk.length);
        noteStreamed(chunk.length);
        cb(null, chunk);
      },
    });
    await pipeline([body, ...through, counter, res]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException)?.code === 'ERR_STREAM_PREMATURE_CLOSE' && sent === length) {
      body.destroy();
      return;
    }
    throw e;
  }
}

/**
 * Writes a body whose buffers are lent (src/format/checked-cache-reader.ts): each chunk goes back
 * to the reader once its write completed, so a long body reuses a few buffers instead of making
 * garbage. Ends as `pipeline` would: a client gone ends the read, a failed read fails the answer.
 */
async function sendLent(body: Readable, giveBack: (chunk: Buffer) => void, res: ServerResponse, count: (bytes: number) => void): Promise<void> {
  // 'data' events, not `for await`: the iterator's read() joins buffered chunks into a new buffer.
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      count(chunk.length);
      noteStreamed(chunk.length);
      if (!res.write(chunk, () => giveBack(chunk))) body.pause();
    };
    const onDrain = (): void => void body.resume();
    const onClose = (): void => fail(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    const onEnd = (): void => {
      cleanup();
      res.end();
      resolve();
    };
    const fail = (e: Error): void => {
      cleanup();
      body.destroy();
      reject(e);
    };
    const cleanup = (): void => {
      body.off('data', onData).off('end', onEnd).off('error', fail);
      res.off('drain', onDrain).off('close', onClose);
    };
    // A client already gone emits no 'close' any more.
    if (res.destroyed) return onClose();
    body.on('data', onData).once('end', onEnd).once('error', fail);
    res.on('drain', onDrain).once('close', onClose);
  });
  await finished(res);
}

function emptyButNotEmpty(entry: Entry): BtrflyError {
  const { sha256 } = entry.response.content;
  return new BtrflyError('BODY_CORRUPT', `body ${sha256} of ${entry.request.method} ${entry.request.url} is corrupt: its manifest entry says 0 bytes, and that is not the SHA-256 of 0 bytes: ${repairAdvice()}`, { data: { sha256 } });
}

function notDecodable(encoding: string, e: Error): BtrflyError {
  return new BtrflyError(
    'STORAGE',
    `its body does not decode as its recorded Content-Encoding "${encoding}" says (${e.message}): record the tag again, or restore its manifest from git history`,
    { cause: e },
  );
}

function missingBody(entry: Entry): BtrflyError {
  return new BtrflyError('BODY_MISSING', `the body ${entry.response.content.sha256.slice(0, 12)} of ${entry.request.method} ${entry.request.url} is missing from the archive: run "btrfly verify"`);
}
