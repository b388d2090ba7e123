/**
 * `teeToStore` copies an upstream body to the archive and to the client at once: every byte
 * reaches both, a slow side holds the source back (nothing piles up), a client that leaves
 * does not stop the recording, and a failure of the source or of the store ends both. The
 * store is a real file stream and the client a real TCP socket on loopback, except where a
 * test needs a client that is slow on purpose (a Writable whose writes complete when told).
 */
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { COALESCE_BYTES, isStoreError, teeToStore } from '../../src/engine/proxy/tee';
import { tmpDir } from '../helpers';
import { sha256 } from '../format/storage-helpers';

const CHUNK = 16 * 1024;

/** `n` chunks of CHUNK bytes, each different, produced on demand (a source that respects pause). */
function source(n: number): { stream: Readable; bytes: Buffer } {
  const chunks = Array.from({ length: n }, (_, i) => Buffer.alloc(CHUNK, i % 251));
  let i = 0;
  const stream = new Readable({
    highWaterMark: CHUNK,
    read() {
      this.push(i < n ? chunks[i++] : null);
    },
  });
  return { stream, bytes: Buffer.concat(chunks) };
}

/** A TCP connection on loopback: `client` is the end the tee writes to; `received` resolves with what the far end read. */
async function socketPair(): Promise<{ client: net.Socket; far: net.Socket; received: Promise<Buffer> }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [far] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  const parts: Buffer[] = [];
  far.on('data', (c: Buffer) => parts.push(c));
  const received = new Promise<Buffer>((resolve) => far.once('close', () => resolve(Buffer.concat(parts))));
  far.on('error', () => undefined);
  return { client, far, received };
}

test('every byte reaches both the store and the client; it resolves once the store is ended', async () => {
  const { stream, bytes } = source(64);
  const { client, received } = await socketPair();
  const file = join(tmpDir(), 'body');
  const store = createWriteStream(file);
  await teeToStore(stream, store, client);
  expect(store.writableFinished).toBe(true);
  expect(sha256(readFileSync(file))).toBe(sha256(bytes));
  expect(sha256(await received)).toBe(sha256(bytes));
});

test('a slow client holds the source back: nothing piles up while it does not read', async () => {
  const { stream, bytes } = source(256);
  const file = join(tmpDir(), 'body');
  const store = createWriteStream(file);
  // A client whose writes complete only when released: it accepts one chunk, then says "wait".
  const held: Array<() => void> = [];
  let release = false;
  const parts: Buffer[] = [];
  const client = new Writable({
    highWaterMark: CHUNK,
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      if (release) cb();
      else held.push(() => cb());
    },
  });
  const done = teeToStore(stream, store, client);
  await once(stream, 'pause');
  // Paused after the client's first "wait": the source gave out one turn's records (at most
  // COALESCE_BYTES, written on as one buffer) and a chunk, not the 4 MiB body.
  expect(stream.isPaused()).toBe(true);
  expect(parts.length).toBeLessThanOrEqual(2);
  expect(store.bytesWritten + store.writableLength).toBeLessThanOrEqual(COALESCE_BYTES + CHUNK);
  release = true;
  for (const cb of held.splice(0)) cb();
  await done;
  expect(sha256(Buffer.concat(parts))).toBe(sha256(bytes));
  expect(sha256(readFileSync(file))).toBe(sha256(bytes));
});

test('a client that goes away does not stop the recording: the store still gets the whole body', async () => {
  const upstream = new PassThrough();
  const { client, far } = await socketPair();
  const file = join(tmpDir(), 'body');
  const store = createWriteStream(file);
  const done = teeToStore(upstream, store, client);
  const first = Buffer.alloc(CHUNK, 1);
  upstream.write(first);
  await once(far, 'data');
  const gone = new Promise((resolve) => client.once('close', resolve));
  far.destroy(); // the client hangs up mid-body
  await gone;
  const rest = Buffer.alloc(4 * CHUNK, 2);
  upstream.end(rest);
  await done;
  expect(sha256(readFileSync(file))).toBe(sha256(Buffer.concat([first, rest])));
});

test('a store that fails rejects with its error, marked as a store error, and the client is cut off', async () => {
  const { stream } = source(8);
  const { client, received } = await socketPair();
  const store = createWriteStream(join(tmpDir(), 'no-such-dir', 'body')); // fails to open: ENOENT
  const err = await teeToStore(stream, store, client).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
  expect(isStoreError(err)).toBe(true);
  await received; // the far end sees the connection close
  expect(client.destroyed).toBe(true);
});

test('a source that fails rejects with its error (not a store error) and ends the store and the client', async () => {
  const upstream = new PassThrough();
  const { client, received } = await socketPair();
  const store = createWriteStream(join(tmpDir(), 'body'));
  const done = teeToStore(upstream, store, client).then(
    () => undefined,
    (e: unknown) => e,
  );
  upstream.write(Buffer.alloc(CHUNK, 3));
  upstream.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  const err = await done;
  expect((err as NodeJS.ErrnoException).code).toBe('ECONNRESET');
  expect(isStoreError(err)).toBe(false);
  expect(store.destroyed).toBe(true);
  await received;
  expect(client.destroyed).toBe(true);
});

test('without a client (a range asked of a body still being recorded) the store alone gets the body', async () => {
  const { stream, bytes } = source(16);
  const file = join(tmpDir(), 'body');
  await teeToStore(stream, createWriteStream(file), null);
  expect(sha256(readFileSync(file))).toBe(sha256(bytes));
});

/** A Writable that keeps each write it is given, whole, and says when one arrives. */
function recorder(): { stream: Writable; writes: Buffer[]; next: () => Promise<Buffer> } {
  const writes: Buffer[] = [];
  let waiter: ((b: Buffer) => void) | undefined;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      waiter?.(chunk);
      waiter = undefined;
      cb();
    },
  });
  return { stream, writes, next: () => new Promise((resolve) => (waiter = resolve)) };
}

test('the records that arrive in one turn reach the store and the client as one write each', async () => {
  const upstream = new PassThrough();
  const store = recorder();
  const client = recorder();
  const done = teeToStore(upstream, store.stream, client.stream);
  const n = COALESCE_BYTES / CHUNK / 2;
  const chunks = Array.from({ length: n }, (_, i) => Buffer.alloc(CHUNK, i));
  const first = store.next();
  for (const c of chunks) upstream.write(c); // one turn: what one socket read can bring
  await first;
  upstream.end(Buffer.alloc(CHUNK, 99));
  await done;
  expect(store.writes.map((w) => w.length)).toEqual([n * CHUNK, CHUNK]);
  expect(client.writes.map((w) => w.length)).toEqual([n * CHUNK, CHUNK]);
  expect(sha256(Buffer.concat(store.writes))).toBe(sha256(Buffer.concat([...chunks, Buffer.alloc(CHUNK, 99)])));
  expect(sha256(Buffer.concat(client.writes))).toBe(sha256(Buffer.concat(store.writes)));
});

test('a turn that brings more than COALESCE_BYTES is written on in pieces of at most that size', async () => {
  const upstream = new PassThrough({ highWaterMark: 8 * COALESCE_BYTES });
  const store = recorder();
  const done = teeToStore(upstream, store.stream, null);
  const n = (3 * COALESCE_BYTES) / CHUNK;
  const chunks = Array.from({ length: n }, (_, i) => Buffer.alloc(CHUNK, i % 251));
  for (const c of chunks) upstream.write(c);
  upstream.end();
  await done;
  expect(store.writes.map((w) => w.length)).toEqual([COALESCE_BYTES, COALESCE_BYTES, COALESCE_BYTES]);
  expect(sha256(Buffer.concat(store.writes))).toBe(sha256(Buffer.concat(chunks)));
});

test('a record is not held back waiting for more: it is written on within its turn', async () => {
  const upstream = new PassThrough();
  const store = recorder();
  const client = recorder();
  const done = teeToStore(upstream, store.stream, client.stream);
  const arrived = Promise.all([store.next(), client.next()]);
  upstream.write(Buffer.alloc(100, 7)); // and nothing more until both have it
  const [s, c] = await arrived;
  expect(s.equals(Buffer.alloc(100, 7)) && c.equals(Buffer.alloc(100, 7))).toBe(true);
  upstream.end();
  await done;
});
