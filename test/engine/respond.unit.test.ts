/**
 * `sendRecorded` answers a client from the archive as HTTP would have: the recorded bytes,
 * `304` for matching validators, `206` for one range, `416` for a range past the end, and the
 * decoded body when the client does not accept the recorded `Content-Encoding`. Bodies live
 * in a real archive (git, zstd, the body cache); a real HTTP server on loopback sends them
 * with `sendRecorded`, and node's HTTP client reads what arrived on the wire.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { sendRecorded, type RecordedAnswer } from '../../src/engine/proxy/respond';
import type { Archive } from '../../src/format/archive';
import type { BodyStore, Header } from '../../src/format/types';
import { entry } from '../format/format-test-data';
import { compressible, sha256, storeBody, tempArchive } from '../format/storage-helpers';

const ETAG = '"v1-abc"';
const LAST_MODIFIED = 'Tue, 02 Jan 2024 03:04:05 GMT';

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let archive: Archive;
let server: http.Server;
let port = 0;
/** The answer the server sends next, and the bytes `sendRecorded` counted for it. */
let answer: RecordedAnswer;
/** Where the server reads bodies from: the archive, or a test's wrapper of it. */
let bodies: BodyStore;
let counted = 0;
/** The server's `sendRecorded` of the last request: a test's request waits for it and fails with its error. */
let sending: Promise<void> = Promise.resolve();
/** The response the server is sending. */
let answering: http.ServerResponse | undefined;
/** Keep-alive, so that the client does not close the socket while the server still finishes its response. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** A recorded 200 of `body` (stored in the archive) with validators, optionally content-encoded. */
async function recorded(body: Buffer, encoding?: string, status = 200): Promise<RecordedAnswer> {
  const stored = await storeBody(archive, body);
  const e = entry('http://origin.test/file', '', { status });
  const headers: Header[] = [
    { name: 'Content-Type', value: 'application/octet-stream' },
    { name: 'ETag', value: ETAG },
    { name: 'Last-Modified', value: LAST_MODIFIED },
    { name: 'Cache-Control', value: 'max-age=60' },
    { name: 'Accept-Ranges', value: 'bytes' },
    ...(encoding ? [{ name: 'Content-Encoding', value: encoding }] : []),
    { name: 'Content-Length', value: String(body.length) },
  ];
  e.response.headers = headers;
  e.response.content = { size: stored.size, mimeType: 'application/octet-stream', sha256: stored.sha256, storage: stored.storage, parts: stored.parts, ...(encoding ? { encoding } : {}) };
  return { entry: e, headers, body: await archive.locateBody(stored) };
}

function get(headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<Got> {
  counted = 0;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/file', method, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const got = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) };
        sending.then(() => resolve(got), reject);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  archive = await tempArchive();
  bodies = archive;
  server = http.createServer((req, res) => {
    answering = res;
    sending = sendRecorded(req, res, answer, bodies, (n) => (counted += n));
    sending.catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  agent.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});


describe.each([
  ['a small body (read whole, one write)', 4096],
  ['a large body (streamed from its parts)', 3 * 1024 * 1024 + 17],
])('%s', (_name, size) => {
  const body = compressible(size);
  body.writeUInt32BE(size, 0); // the two sizes differ in their first bytes too
  let stored: RecordedAnswer;
  beforeAll(async () => {
    stored = await recorded(body);
  });
  beforeEach(() => {
    answer = stored;
  });

  test('a plain GET gets the recorded status, headers and bytes; every byte is counted', async () => {
    const r = await get();
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(size));
    expect(r.headers.etag).toBe(ETAG);
    expect(r.headers['last-modified']).toBe(LAST_MODIFIED);
    expect(sha256(r.body)).toBe(sha256(body));
    expect(counted).toBe(size);
  });

  test('HEAD gets the headers and the length, no body', async () => {
    const r = await get({}, 'HEAD');
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(size));
    expect(r.body.length).toBe(0);
    expect(counted).toBe(0);
  });

  test('If-None-Match with the recorded ETag: 304 with only the headers a 304 carries', async () => {
    const r = await get({ 'If-None-Match': ETAG });
    expect(r.status).toBe(304);
    expect(r.body.length).toBe(0);
    expect(r.headers.etag).toBe(ETAG);
    expect(r.headers['cache-control']).toBe('max-age=60');
    expect(r.headers['last-modified']).toBe(LAST_MODIFIED);
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.headers['accept-ranges']).toBeUndefined();
  });

  test('If-Modified-Since at the recorded Last-Modified: 304; another ETag: the whole 200', async () => {
    expect((await get({ 'If-Modified-Since': LAST_MODIFIED })).status).toBe(304);
    const other = await get({ 'If-None-Match': '"v2-other"' });
    expect(other.status).toBe(200);
    expect(sha256(other.body)).toBe(sha256(body));
  });

  test('one range: 206 with Content-Range and exactly those bytes', async () => {
    const r = await get({ Range: 'bytes=1000-2999' });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-2999/${size}`);
    expect(r.headers['content-length']).toBe('2000');
    expect(r.body.equals(body.subarray(1000, 3000))).toBe(true);
    expect(counted).toBe(2000);
    const tail = await get({ Range: 'bytes=-10' });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(body.subarray(size - 10))).toBe(true);
  });

  test('a range past the end: 416 with bytes */size and no body', async () => {
    const r = await get({ Range: `bytes=${size}-${size + 10}` });
    expect(r.status).toBe(416);
    expect(r.headers['content-range']).toBe(`bytes */${size}`);
    expect(r.headers['content-length']).toBe('0');
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.body.length).toBe(0);
  });

  test('If-Range that does not match, or several ranges: the whole 200', async () => {
    const stale = await get({ Range: 'bytes=0-9', 'If-Range': '"v0-old"' });
    expect(stale.status).toBe(200);
    expect(sha256(stale.body)).toBe(sha256(body));
    const matching = await get({ Range: 'bytes=0-9', 'If-Range': ETAG });
    expect(matching.status).toBe(206);
    expect(matching.body.equals(body.subarray(0, 10))).toBe(true);
    const multi = await get({ Range: 'bytes=0-9,2000-2009' });
    expect(multi.status).toBe(200);
    expect(multi.body.length).toBe(size);
  });
});

describe.each([
  ['gzip', (b: Buffer) => zlib.gzipSync(b)],
  ['br', (b: Buffer) => zlib.brotliCompressSync(b)],
  ['deflate', (b: Buffer) => zlib.deflateSync(b)],
  ['zstd', (b: Buffer) => zlib.zstdCompressSync(b)],
])('a body recorded with Content-Encoding: %s', (encoding, encode) => {
  const plain = compressible(200 * 1024);
  const encoded = encode(plain);

  let stored: RecordedAnswer;
  beforeAll(async () => {
    stored = await recorded(encoded, encoding);
  });
  beforeEach(() => {
    answer = stored;
  });

  test('a client that accepts it gets the recorded bytes, still encoded', async () => {
    const r = await get({ 'Accept-Encoding': `${encoding}, identity` });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe(encoding);
    expect(r.body.equals(encoded)).toBe(true);
  });

  test('a client that sends no Accept-Encoding accepts any coding (RFC 9110 §12.5.3): the recorded bytes', async () => {
    const r = await get();
    expect(r.headers['content-encoding']).toBe(encoding);
    expect(r.body.equals(encoded)).toBe(true);
  });

  test('a client that does not accept it gets the decoded body, without Content-Encoding, ETag or a stale length', async () => {
    const r = await get({ 'Accept-Encoding': 'identity' });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers.etag).toBeUndefined();
    expect(r.headers['accept-ranges']).toBeUndefined();
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.body.equals(plain)).toBe(true);
    expect(counted).toBe(plain.length);
  });
});

describe('a client that hangs up in the middle of a large body', () => {
  test('the answer fails as a premature close and the body read is torn down', async () => {
    const big = compressible(24 * 1024 * 1024 + 5); // more than loopback's socket buffers hold
    answer = await recorded(big);
    const opened: Readable[] = [];
    bodies = Object.assign(Object.create(archive) as BodyStore, {
      openBody: (...args: Parameters<BodyStore['openBody']>) => (opened.push(archive.openBody(...args)), opened.at(-1)!),
    });
    const hungUp = new Promise<void>((resolve, reject) => {
      // Its own connection, not the keep-alive agent's: it is destroyed.
      const req = http.request({ host: '127.0.0.1', port, path: '/file', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
    });
    await hungUp;
    await expect(sending).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(opened).toHaveLength(1);
    expect(opened[0].destroyed).toBe(true);
    bodies = archive;
  });
});

describe('a client that hangs up as soon as it has Content-Length bytes, before the body stream has ended here', () => {
  test('got its whole answer: the send succeeds with every byte counted', async () => {
    const body = compressible(3 * 1024 * 1024 + 7);
    answer = await recorded(body);
    counted = 0;
    // Every byte comes at once; the stream ends only after the server saw the client go (as curl does at Content-Length).
    bodies = Object.assign(Object.create(archive) as BodyStore, {
      readSmallBody: () => null,
      openBody: () =>
        Readable.from(
          (async function* () {
            yield body;
            await once(answering!, 'close');
          })(),
          { objectMode: false },
        ),
    });
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/file', agent: false }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
          if (got === body.length) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
    });
    await expect(sending).resolves.toBeUndefined();
    expect(counted).toBe(body.length);
    bodies = archive;
  });
});
