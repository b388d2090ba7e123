/**
 * The SHA-256 an LFS write names its object by, hashed on the worker thread: the same digest as
 * Node's own hash of the same bytes, whatever the chunking, for bodies hashed side by side, and
 * from the bytes as they were when handed over.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BackgroundSha256 } from '../../src/format/background-sha256';

const MiB = 1024 * 1024;

/** Feeds `chunks` as a writer does: each after `room()` allows it. */
async function hashAsWriter(chunks: Buffer[]): Promise<string> {
  const h = new BackgroundSha256();
  for (const c of chunks) {
    h.update(c);
    await h.room();
  }
  return h.digest();
}

function sha256(chunks: Buffer[]): string {
  return chunks.reduce((h, c) => h.update(c), createHash('sha256')).digest('hex');
}

/** `total` bytes cut at sizes from `sizes`, in turn. */
function cut(total: number, sizes: number[]): Buffer[] {
  const bytes = randomBytes(total);
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < total; i++) {
    const n = Math.min(sizes[i % sizes.length], total - at);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

test('the digest is the SHA-256 of the bytes, for an empty body, one byte, and 20 MiB in chunks of every size (one larger than all the buffers)', async () => {
  expect(await hashAsWriter([])).toBe(sha256([]));
  expect(await hashAsWriter([Buffer.from('x')])).toBe(sha256([Buffer.from('x')]));
  const chunks = cut(20 * MiB + 7, [1, 65_536, MiB, 17 * MiB, 3 * MiB - 1]);
  expect(chunks.some((c) => c.length === 17 * MiB)).toBe(true);
  expect(await hashAsWriter(chunks)).toBe(sha256(chunks));
});

test('bytes handed over without waiting for room are all hashed, in order', async () => {
  const chunks = cut(30 * MiB, [MiB + 1, 5 * MiB]);
  const h = new BackgroundSha256();
  for (const c of chunks) h.update(c);
  expect(await h.digest()).toBe(sha256(chunks));
});

test('two bodies hashed side by side get their own digests', async () => {
  const a = cut(12 * MiB, [256 * 1024]);
  const b = cut(9 * MiB, [MiB]);
  const [da, db] = await Promise.all([hashAsWriter(a), hashAsWriter(b)]);
  expect([da, db]).toEqual([sha256(a), sha256(b)]);
});

test('a chunk changed after room() resolved does not change the digest: its bytes were copied', async () => {
  const chunk = randomBytes(3 * MiB);
  const original = Buffer.from(chunk);
  const h = new BackgroundSha256();
  h.update(chunk);
  await h.room();
  chunk.fill(0);
  expect(await h.digest()).toBe(sha256([original]));
});

test('a cancelled body gives no digest, and the next body is hashed as usual', async () => {
  const h = new BackgroundSha256();
  h.update(randomBytes(4 * MiB));
  h.cancel();
  await expect(h.digest()).rejects.toThrow(/cancelled/);
  const chunks = cut(2 * MiB, [MiB]);
  expect(await hashAsWriter(chunks)).toBe(sha256(chunks));
});

/** Runs `body` in a plain node process that can require the sources; resolves with its stdout. */
async function inChild(body: string): Promise<string> {
  const script = `require(${JSON.stringify(join(__dirname, 'storage-ts-register.js'))});
const { BackgroundSha256 } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'format', 'background-sha256.ts'))});
${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { timeout: 20_000 });
  return stdout;
}

test('the hashing thread keeps a process alive while a digest is awaited, and not for a body left unfinished', async () => {
  // Only the pending digest keeps this process up: it prints the digest, then ends.
  expect(await inChild("new BackgroundSha256().digest().then((d) => console.log(d));")).toBe(`${sha256([])}\n`);
  // A body written to but never ended (every buffer at the worker, bytes waiting): the process ends on its own.
  expect(await inChild("const h = new BackgroundSha256(); h.update(Buffer.alloc(12 * 1024 * 1024)); h.room(); console.log('left');")).toBe('left\n');
});
