import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BtrflyError } from '../../src/errors';
import { base64Chunks, fromHar, toHar } from '../../src/format/har';
import type { Entry } from '../../src/format/types';
import { tmpDir } from '../helpers/tmp';
import { entry, sha } from './format-test-data';

const h = (name: string, value: string) => ({ name, value });

/** Feeds a body in uneven chunks, so base64 groups straddle chunk boundaries. */
function unevenStream(bytes: Buffer): Readable {
  const sizes = [1, 2, 5, 7, 1, 4096, 3];
  const chunks: Buffer[] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const n = sizes[k % sizes.length];
    chunks.push(bytes.subarray(i, i + n));
    i += n;
  }
  return Readable.from(chunks);
}

describe('base64Chunks', () => {
  it.each([0, 1, 2, 3, 4, 5, 17, 5000])('joins into the base64 of %i bytes', async (n) => {
    const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255));
    let out = '';
    for await (const piece of base64Chunks(unevenStream(bytes))) out += piece;
    expect(out).toBe(bytes.toString('base64'));
  });
});

describe('HAR export and import', () => {
  const dir = tmpDir('btrfly-har-');

  const binary = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) & 255));
  const bodies = new Map<string, Buffer>([
    [sha(binary), binary],
    [sha('{"ok":true}'), Buffer.from('{"ok":true}')],
    [sha(''), Buffer.alloc(0)],
  ]);
  const bin: Entry = {
    ...entry('https://cdn.example/pkg.tgz?v=1&q=a%20b', 'x', { reqHeaders: [h('accept', '*/*'), h('authorization', '[redacted]')] }),
  };
  bin.response.content = { size: binary.length, mimeType: 'application/gzip', sha256: sha(binary), encoding: 'gzip', storage: 'raw', parts: 1 };
  bin.response.headers = [h('Content-Type', 'application/gzip'), h('Content-Encoding', 'gzip'), h('ETag', '"e1"')];
  const api = entry('https://api.example/v1', '{"ok":true}', { method: 'POST', bodySha256: sha('q=1'), ordinal: 1 });
  const empty = entry('https://api.example/redirect', '', { status: 302, headers: [h('Location', 'https://api.example/v1')] });
  const volatile = { btrflyFormat: 1 as const, entries: { 'GET https://cdn.example/pkg.tgz?v=1&q=a%20b #0': [{ name: 'Date', value: 'Tue, 01 Jul 2025 10:00:00 GMT', index: 0 }] } };
  const src = { entries: [bin, api, empty], volatile, recordedAt: new Date('2025-07-01T10:00:00Z'), title: 'ci@1a2b3c4', creatorVersion: '0.1.0' };
  const openBody = (e: Entry): Readable => unevenStream(bodies.get(e.response.content.sha256)!);

  async function exportTo(name: string): Promise<string> {
    const file = join(dir, name);
    await pipeline(toHar(src, openBody), createWriteStream(file));
    return file;
  }

  it('writes HAR 1.2 that JSON.parse reads, with bodies inline in base64', async () => {
    const har = JSON.parse(readFileSync(await exportTo('a.har'), 'utf8'));
    expect(har.log.version).toBe('1.2');
    expect(har.log.creator).toEqual({ name: 'btrfly', version: '0.1.0' });
    expect(har.log.entries).toHaveLength(3);
    // In manifest order: by URL.
    const [e1, e2, e0] = har.log.entries;
    expect(har.log.entries.map((e: { request: { url: string } }) => e.request.url)).toEqual([
      empty.request.url,
      api.request.url,
      bin.request.url,
    ]);
    expect(e0.startedDateTime).toBe('2025-07-01T10:00:00.000Z');
    expect(e0.request).toMatchObject({ method: 'GET', httpVersion: 'HTTP/1.1', cookies: [], headersSize: -1, bodySize: 0 });
    expect(e0.request.queryString).toEqual([h('v', '1'), h('q', 'a b')]);
    expect(e0.response.headers).toEqual([h('Date', 'Tue, 01 Jul 2025 10:00:00 GMT'), ...bin.response.headers]);
    expect(e0.response.content).toMatchObject({ size: binary.length, mimeType: 'application/gzip', encoding: 'base64' });
    expect(Buffer.from(e0.response.content.text, 'base64').equals(binary)).toBe(true);
    expect(e0.timings).toMatchObject({ send: 0, wait: 0, receive: 0 });
    expect(e0.cache).toEqual({});
    expect(e1.response).toMatchObject({ status: 302, redirectURL: 'https://api.example/v1', bodySize: 0, content: { size: 0, text: '' } });
    expect(Buffer.from(e2.response.content.text, 'base64').toString()).toBe('{"ok":true}');
    expect(e2.request.bodySize).toBe(-1);
  });

  it('reads back through fromHar: same requests, headers and body bytes', async () => {
    const got = await fromHar(createReadStream(await exportTo('b.har')), 'b.har');
    expect(got.creator).toBe('btrfly 0.1.0');
    const byUrl = new Map(got.entries.map((e) => [e.request.url, e]));
    const g = byUrl.get(bin.request.url)!;
    expect(g.response.headers).toContainEqual(h('Content-Encoding', 'gzip'));
    expect(g.request.headers).toEqual(bin.request.headers);
    expect(g.size).toBe(binary.length);
    const parts: Buffer[] = [];
    for await (const c of g.openBody()) parts.push(c as Buffer);
    expect(sha(Buffer.concat(parts))).toBe(sha(binary));
    const p = byUrl.get(api.request.url)!;
    expect(p).toMatchObject({ ordinal: 1, request: { method: 'POST', bodySha256: sha('q=1') }, response: { status: 200 } });
    expect(byUrl.get(empty.request.url)!).toMatchObject({ hasBody: true, size: 0 });
  });

  it('imports a browser HAR: text bodies, decoded, encoding headers dropped', async () => {
    const browserHar = {
      log: {
        version: '1.2',
        creator: { name: 'WebInspector', version: '537.36' },
        entries: [
          {
            startedDateTime: '2025-01-01T00:00:00.000Z',
            request: { method: 'POST', url: 'https://h.example/a', headers: [h(':authority', 'h.example')], postData: { text: 'x=1' } },
            response: {
              status: 200,
              headers: [h(':status', '200'), h('content-encoding', 'br'), h('content-length', '12'), h('content-type', 'text/plain')],
              content: { size: 9, mimeType: 'text/plain', text: 'héllo 😀' },
            },
          },
          { request: { method: 'GET', url: 'https://h.example/none' }, response: { status: 204, content: { size: 0, mimeType: '' } } },
        ],
      },
    };
    const got = await fromHar(Readable.from([JSON.stringify(browserHar)]), 'chrome.har');
    const [a, none] = got.entries;
    expect(a.response.headers).toEqual([h('content-type', 'text/plain')]);
    expect(a.request).toEqual({ method: 'POST', url: 'https://h.example/a', headers: [], bodySha256: sha('x=1') });
    let text = '';
    for await (const c of a.openBody()) text += (c as Buffer).toString();
    expect(text).toBe('héllo 😀');
    expect(a.size).toBe(Buffer.byteLength('héllo 😀'));
    expect(none.hasBody).toBe(false);
  });

  it('names the file and the problem for what is not a HAR', async () => {
    await expect(fromHar(Readable.from(['{"log":']), 'x.har')).rejects.toThrow(/^x\.har is not a HAR 1\.2 file: it is not JSON \(/);
    await expect(fromHar(Readable.from(['{"btrflyFormat":1}']), 'm.json')).rejects.toThrow(BtrflyError);
    await expect(fromHar(Readable.from(['{"log":{"entries":[{"request":{}}]}}']), 'y.har')).rejects.toThrow(
      'y.har is not a HAR 1.2 file: entry 0 has no request or response: export it again as HAR with content and retry',
    );
  });

  it('streams a large body without holding it in memory', async () => {
    const size = 96 * 1024 * 1024;
    const big: Entry = entry('https://big.example/blob', 'x');
    big.response.content = { ...big.response.content, size, sha256: 'b'.repeat(64) };
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let peak = 0;
    const start = process.memoryUsage().heapUsed;
    async function* gen() {
      for (let i = 0; i < size / chunk.length; i++) {
        peak = Math.max(peak, process.memoryUsage().heapUsed - start);
        yield chunk;
      }
    }
    const file = join(dir, 'big.har');
    await pipeline(toHar({ entries: [big], recordedAt: new Date(), title: 'big' }, () => Readable.from(gen())), createWriteStream(file));
    expect(statSync(file).size).toBeGreaterThan((size * 4) / 3);
    // The base64 text alone would be 128 MiB of string.
    expect(peak).toBeLessThan(48 * 1024 * 1024);
  });
});
