/**
 * The recorder's ordinals: a request answered again differently gets the next ordinal, the same
 * answer again is no new entry, two requests to one URL that differ by their body are two
 * entries (not both #0, or the second would replace the first at seal), and `--append`
 * continues from the previous recording's ordinals. A real `RecordSession` on a real archive
 * forwards to the test origin on loopback; node's HTTP client talks to it; the sealed
 * manifest is read back from git.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../src/engine/base/log';
import { RecordSession } from '../../src/engine/session/recorder';
import { newSessionInfo } from '../../src/engine/proxy/session';
import { Upstream } from '../../src/engine/proxy/upstream';
import type { Archive } from '../../src/format/archive';
import type { Entry } from '../../src/format/types';
import { startOrigin, type Origin } from '../helpers';
import { tempArchive } from '../format/storage-helpers';
import { beginRecording } from '../../src/format/recording-writer';

const TAG = 'ordinals';
const NO_REDACTION = { headers: [], query: [] };

let origin: Origin;
let archive: Archive;
let upstream: Upstream;

beforeAll(async () => {
  origin = await startOrigin();
  archive = await tempArchive();
  upstream = new Upstream({});
});

afterAll(async () => {
  upstream.close();
  await origin.close();
});

/** A record session of TAG behind an HTTP server on loopback; `seal()` drains it, seals, and returns the sealed entries. */
async function recordSession(append: boolean, existing: readonly Entry[] = []) {
  const info = newSessionInfo({ tag: TAG, mode: 'record', append });
  const writer = await beginRecording(archive, TAG, { append, session: info.id });
  const session = new RecordSession(info, writer, archive, upstream, NO_REDACTION, randomBytes(32), silentLogger, existing);
  const front = http.createServer((req, res) => {
    session.handle(req, res, new URL(req.url!, origin.url)).catch(() => res.destroy());
  });
  front.listen(0, '127.0.0.1');
  await new Promise((resolve) => front.once('listening', resolve));
  const port = (front.address() as AddressInfo).port;
  const agent = new http.Agent({ keepAlive: true });

  const request = (method: string, path: string, body?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { 'Content-Type': 'text/plain' } : {} }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const seal = async (): Promise<Entry[]> => {
    agent.destroy();
    await new Promise<void>((resolve) => front.close(() => resolve()));
    await session.drain();
    const { commit } = await writer.seal({ message: `record ${TAG}\n` });
    return (await archive.readRecording(TAG, commit)).manifest.entries;
  };
  return { request, seal, info };
}

const of = (entries: Entry[], method: string, path: string): Entry[] => entries.filter((e) => e.request.method === method && e.request.url === `${origin.url}${path}`);

test('changed answers take the next ordinals, repeats are no new entry, bodies tell requests apart, append continues', async () => {
  const first = await recordSession(false);
  // A URL answered differently each time: #0, #1, #2 in the order asked.
  expect(await first.request('GET', '/counter')).toBe('count 1\n');
  expect(await first.request('GET', '/counter')).toBe('count 2\n');
  expect(await first.request('GET', '/counter')).toBe('count 3\n');
  // The same answer again: one entry.
  const same = await first.request('GET', '/gen/100?seed=4');
  expect(await first.request('GET', '/gen/100?seed=4')).toBe(same);
  // Two POSTs to one URL with different bodies (git's two POSTs to git-upload-pack), the first again.
  await first.request('POST', '/echo', 'first body');
  await first.request('POST', '/echo', 'second body');
  await first.request('POST', '/echo', 'first body');
  const entries = await first.seal();
  expect(first.info.stats.recorded).toBe(6);
  expect(entries).toHaveLength(6);

  expect(of(entries, 'GET', '/counter').map((e) => e.ordinal)).toEqual([0, 1, 2]);
  expect(of(entries, 'GET', '/gen/100?seed=4').map((e) => e.ordinal)).toEqual([0]);
  const posts = of(entries, 'POST', '/echo');
  expect(posts.map((e) => e.ordinal)).toEqual([0, 1]);
  expect(new Set(posts.map((e) => e.request.bodySha256)).size).toBe(2);

  // --append: the kept entries seed the counters, so the next different answer is #3.
  const second = await recordSession(true, entries);
  expect(await second.request('GET', '/counter')).toBe('count 4\n');
  await second.request('GET', '/gen/100?seed=4'); // the same answer as recorded: nothing new
  await second.request('POST', '/echo', 'third body'); // a third body to the same URL: #2
  const appended = await second.seal();
  expect(second.info.stats.recorded).toBe(2);
  expect(of(appended, 'GET', '/counter').map((e) => e.ordinal)).toEqual([0, 1, 2, 3]);
  expect(of(appended, 'GET', '/gen/100?seed=4').map((e) => e.ordinal)).toEqual([0]);
  expect(of(appended, 'POST', '/echo').map((e) => e.ordinal)).toEqual([0, 1, 2]);
});
