import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WARCParser, WARCRecord, WARCSerializer } from 'warcio';
import { base32, toWarc } from '../../src/format/warc';
import type { Entry } from '../../src/format/types';
import { tmpDir } from '../helpers/tmp';
import { entry, sha } from './format-test-data';

const h = (name: string, value: string) => ({ name, value });

describe('WARC export', () => {
  const dir = tmpDir('btrfly-warc-');

  const gz = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 13) & 255));
  const bodies = new Map<string, Buffer>([[sha(gz), gz], [sha('hello\r\n\r\nworld'), Buffer.from('hello\r\n\r\nworld')], [sha(''), Buffer.alloc(0)]]);
  const pkg: Entry = entry('https://registry.example/pkg/-/pkg-1.0.0.tgz?x=1', 'x', { reqHeaders: [h('accept', '*/*')] });
  pkg.response.content = { size: gz.length, mimeType: 'application/gzip', sha256: sha(gz), encoding: 'gzip', storage: 'raw', parts: 1 };
  pkg.response.headers = [h('Content-Type', 'application/gzip'), h('Content-Encoding', 'gzip'), h('Content-Length', String(gz.length))];
  const text = entry('https://h.example/t', 'hello\r\n\r\nworld', { status: 404, headers: [h('Content-Type', 'text/plain')] });
  text.response.statusText = 'Not Found';
  const empty = entry('https://h.example/moved', '', { status: 301, headers: [h('Location', '/t')] });
  empty.response.statusText = '';
  const volatile = { btrflyFormat: 1 as const, entries: { 'GET https://h.example/t #0': [{ name: 'Date', value: 'Tue, 01 Jul 2025 10:00:00 GMT', index: 0 }] } };
  const src = { entries: [pkg, text, empty], volatile, recordedAt: new Date('2025-07-01T10:00:00.123Z'), title: 'ci@1a2b3c4' };
  const openBody = (e: Entry): Readable => {
    const b = bodies.get(e.response.content.sha256)!;
    return Readable.from([b.subarray(0, 7), b.subarray(7)]);
  };

  it('is read back by warcio: same URLs, statuses, headers and body bytes', async () => {
    const file = join(dir, 'a.warc');
    await pipeline(toWarc(src, openBody, 'a.warc'), createWriteStream(file));
    const records: Array<{ type: string; uri?: string; status?: number; body?: string; digest?: string; headers?: [string, string][]; concurrent?: string[]; id?: string }> = [];
    for await (const r of new WARCParser(createReadStream(file), { keepHeadersCase: true })) {
      const payload = Buffer.from(await r.readFully(false));
      records.push({
        type: r.warcType!,
        uri: r.warcTargetURI ?? undefined,
        status: r.warcType === 'response' ? Number(r.httpHeaders?.statusCode) : undefined,
        body: sha(payload),
        digest: r.warcPayloadDigest ?? undefined,
        headers: r.httpHeaders ? [...(r.httpHeaders.headers as unknown as Map<string, string>).entries()] : undefined,
        concurrent: r.warcConcurrentTo,
        id: r.warcHeader('WARC-Record-ID') ?? undefined,
      });
      expect(r.warcDate).toBe('2025-07-01T10:00:00Z');
    }
    expect(records.map((r) => `${r.type} ${r.uri ?? ''} ${r.status ?? ''}`.trim())).toEqual([
      'warcinfo',
      'response https://h.example/moved 301',
      'request https://h.example/moved',
      'response https://h.example/t 404',
      'request https://h.example/t',
      'response https://registry.example/pkg/-/pkg-1.0.0.tgz?x=1 200',
      'request https://registry.example/pkg/-/pkg-1.0.0.tgz?x=1',
    ]);
    const responses = records.filter((r) => r.type === 'response');
    expect(responses.map((r) => r.body)).toEqual([sha(''), sha('hello\r\n\r\nworld'), sha(gz)]);
    expect(responses[1].headers).toEqual([['Date', 'Tue, 01 Jul 2025 10:00:00 GMT'], ['Content-Type', 'text/plain']]);
    expect(records[2].concurrent).toEqual([records[1].id]);
    const req = records[6];
    expect(req.headers).toEqual([['Host', 'registry.example'], ['accept', '*/*']]);
  });

  it('writes the payload digest as warcio computes it (sha256, base32)', async () => {
    const record = WARCRecord.create(
      { url: text.request.url, type: 'response', warcVersion: 'WARC/1.1', statusline: 'HTTP/1.1 404 Not Found', httpHeaders: { 'Content-Type': 'text/plain' } },
      (async function* () {
        yield new Uint8Array(Buffer.from('hello\r\n\r\nworld'));
      })(),
    );
    await WARCSerializer.serialize(record, { digest: { algo: 'sha-256', prefix: 'sha256:', base32: true } });
    const file = join(dir, 'b.warc');
    await pipeline(toWarc(src, openBody), createWriteStream(file));
    let ours: string | null = null;
    for await (const r of new WARCParser(createReadStream(file))) if (r.warcTargetURI === text.request.url && r.warcType === 'response') ours = r.warcPayloadDigest ?? null;
    expect(ours).toBe(record.warcPayloadDigest);
    expect(base32(Buffer.from('foobar'))).toBe('MZXW6YTBOI======');
  });

  it('fails when a body does not have its recorded size', async () => {
    const short = (e: Entry): Readable => Readable.from([bodies.get(e.response.content.sha256)!.subarray(1)]);
    await expect(pipeline(toWarc(src, short), createWriteStream(join(dir, 'c.warc')))).rejects.toThrow(
      /^body of GET https:\/\/h.example\/t #0 has 13 bytes where the manifest says 14: run "btrfly verify" on the tag$/,
    );
  });
});
