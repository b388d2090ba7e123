'use strict';
/**
 * Child process for the storage e2e tests and measurements: writes or reads one large body
 * in an archive and prints one JSON line (sha256, size, seconds, peak RSS in MiB).
 *   node storage-child.js write ARCHIVE SIZE SEED [random|text]   → also records tag "big"
 *     with STORAGE_CHILD_SIGNAL_AT=N it prints {"fed":N} once the writer has taken N bytes
 *   node storage-child.js read ARCHIVE [git]   → with `git`, from git's objects and not the body cache
 * Run with --expose-gc --no-concurrent-array-buffer-sweeping, the line also has `heldMiB`: what
 * JavaScript holds (heap and buffers) after a full collection, every 256 MiB of the body. Unlike
 * the peak, that does not depend on when the collector got the CPU: a leak makes it grow, a busy
 * machine does not.
 */
// BTRFLY_DIST: the compiled build (dist/), so the measured RSS is btrfly's and not the
// TypeScript compiler's; without it the sources are compiled on the fly.
const dist = process.env.BTRFLY_DIST;
if (!dist) require('./storage-ts-register.js');
const { Writable, Readable, Transform } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { createHash } = require('node:crypto');
const { Archive } = require(dist ? `${dist}/format/archive.js` : '../../src/format/archive.ts');
const { beginRecording } = require(dist ? `${dist}/format/recording-writer.js` : '../../src/format/recording-writer.ts');
const { genBodyStream } = require('../fixtures/gen-body.js');

/** Compressible bytes generated on the fly (JSON-like lines), never held whole. */
function textStream(size) {
  const line = Buffer.from('{"name":"left-pad","version":"1.3.0","integrity":"sha512-Lz3bQmWlQ"}\n');
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < block.length; i += line.length) line.copy(block, i);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return this.push(null);
      const n = Math.min(left, block.length);
      left -= n;
      this.push(block.subarray(0, n));
    },
  });
}

/** `heldMiB` samples: one each HELD_EVERY bytes of the body, after a full collection. */
const HELD_EVERY = 256 << 20;
const held = [];
let seen = 0;
function saw(n) {
  seen += n;
  if (!global.gc || seen < (held.length + 1) * HELD_EVERY) return;
  global.gc();
  const m = process.memoryUsage();
  held.push(Math.round((m.heapUsed + m.arrayBuffers) / 1048576));
}

/** Passes bytes through; prints {"fed":N} once N bytes went by (the writer has taken them: backpressure). */
function fedSignal(at) {
  let fed = 0;
  return new Transform({
    highWaterMark: 0,
    transform(chunk, _e, cb) {
      const before = fed;
      fed += chunk.length;
      saw(chunk.length);
      if (at > 0 && before < at && fed >= at) process.stdout.write(JSON.stringify({ fed: at }) + '\n');
      cb(null, chunk);
    },
  });
}

async function main() {
  const [mode, dir, ...rest] = process.argv.slice(2);
  const t0 = process.hrtime.bigint();
  const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = () => Math.round(process.resourceUsage().maxRSS / 1024);
  if (mode === 'write') {
    const [size, seed, kind] = [Number(rest[0]), rest[1], rest[2] ?? 'random'];
    const a = await Archive.open(dir, { create: true });
    const rec = await beginRecording(a, 'big', { session: 'e2e' });
    process.stdout.write(JSON.stringify({ journal: rec.id }) + '\n');
    const w = a.createBodyWriter();
    const src = kind === 'text' ? textStream(size) : genBodyStream(size, seed);
    await pipeline(src, fedSignal(Number(process.env.STORAGE_CHILD_SIGNAL_AT ?? 0)), w);
    const body = await w.done;
    const writeSecs = secs();
    const entry = {
      request: { method: 'GET', url: 'https://example.test/big', headers: [] },
      ordinal: 0,
      response: {
        status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: [],
        content: { size: body.size, mimeType: 'application/octet-stream', sha256: body.sha256, storage: body.storage, parts: body.parts },
      },
    };
    await rec.addEntry(entry, [], body);
    await rec.seal();
    await a.close();
    process.stdout.write(JSON.stringify({ sha256: body.sha256, size: body.size, storage: body.storage, seconds: writeSecs, rssMiB: rss(), heldMiB: held }) + '\n');
  } else if (mode === 'read') {
    const a = await Archive.open(dir);
    const commit = await a.resolveCommit('big');
    const recording = await a.readRecording('big', commit);
    const loc = [...recording.bodies.values()][0];
    const hash = createHash('sha256');
    let size = 0;
    const body = a.openBody(loc, undefined, { fromGit: rest[0] === 'git' });
    if (typeof body.lend === 'function') {
      // As playback reads a cached body (src/engine/proxy/respond.ts): each buffer goes back to
      // the reader once used, so the read makes no garbage and its peak does not hang on when
      // the garbage collector gets the CPU.
      const giveBack = body.lend();
      await new Promise((resolve, reject) => {
        body.on('data', (c) => { hash.update(c); size += c.length; saw(c.length); giveBack(c); });
        body.once('end', resolve);
        body.once('error', reject);
      });
    } else {
      await pipeline(body, new Writable({ highWaterMark: 1 << 20, write(c, _e, cb) { hash.update(c); size += c.length; saw(c.length); cb(); } }));
    }
    await a.close();
    process.stdout.write(JSON.stringify({ sha256: hash.digest('hex'), size, seconds: secs(), rssMiB: rss(), heldMiB: held }) + '\n');
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e.code ?? ''} ${e.stack}\n`);
  process.exit(1);
});
