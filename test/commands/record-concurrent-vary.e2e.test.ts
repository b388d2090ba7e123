/**
 * Two clients ask for the same URL at the same time while recording, with request headers the
 * origin's answer varies on (its `Vary` is only known once it answers): each must get the answer
 * to its own request, never the other's (Authorization: another user's answer), and the recording
 * must hold both. Real curl through `btrfly run`; the origin holds the first request until the
 * second reaches it, so the two are surely under way at once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

/** Names the user an Authorization stands for, so the body holds no credential. */
const USERS: Record<string, string> = { 'Bearer tok-alice': 'alice', 'Bearer tok-bob': 'bob' };
/** A bound on the wait for the second request, only so that a recorder which never sends it fails rather than hangs. */
const HOLD_BOUND_MS = 5000;

let server: Server;
let port: number;
beforeAll(async () => {
  // GET /held/HEADER answers, varying on HEADER, once two requests for it have arrived.
  const held = new Map<string, Array<() => void>>();
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const header = req.url!.slice('/held/'.length);
    const value = req.headers[header.toLowerCase()] as string | undefined;
    const answer = (): void => {
      const body = `${header}=${header === 'Authorization' ? USERS[value ?? ''] : value}\n`;
      res.writeHead(200, { 'Content-Type': 'text/plain', Vary: header, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    const waiting = held.get(header) ?? [];
    waiting.push(answer);
    held.set(header, waiting);
    const release = (): void => {
      held.delete(header);
      for (const a of waiting) a();
    };
    if (waiting.length === 2) release();
    else setTimeout(() => held.get(header) === waiting && release(), HOLD_BOUND_MS).unref();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

test('concurrent requests for one URL that differ in a header the answer varies on each get their own answer', async () => {
  const archive = join(tmpDir(), 'archive');
  const out = tmpDir();
  const base = `http://vary.test:${port}/held`;
  const script = join(out, 'build.sh');
  writeFileSync(script, [
    'set -e',
    `curl -sSf -H 'Authorization: Bearer tok-alice' -o ${out}/alice ${base}/Authorization &`,
    `curl -sSf -H 'Authorization: Bearer tok-bob' -o ${out}/bob ${base}/Authorization &`,
    `curl -sSf -H 'X-Variant: one' -o ${out}/one ${base}/X-Variant &`,
    `curl -sSf -H 'X-Variant: two' -o ${out}/two ${base}/X-Variant &`,
    'wait',
    '',
  ].join('\n'));
  const rec = await runCli(['run', '--record', '--tag=vary', '--archive', archive, '--resolve', 'vary.test:127.0.0.1', '--', 'sh', script]);
  expect(rec.code).toBe(0);
  const got = Object.fromEntries(['alice', 'bob', 'one', 'two'].map((f) => [f, readFileSync(join(out, f), 'utf8')]));
  expect(got).toEqual({ alice: 'Authorization=alice\n', bob: 'Authorization=bob\n', one: 'X-Variant=one\n', two: 'X-Variant=two\n' });
  expect(rec.stderr).toMatch(/4 requests, 4 entries/);

  // The X-Variant answers play back to their own requests (Authorization is stored redacted, so
  // its two answers are one request's, in recorded order).
  for (const v of ['one', 'two']) {
    const play = await runCli(['run', '--playback', '--tag=vary', '--archive', archive, '--', 'curl', '-sSf', '-H', `X-Variant: ${v}`, `${base}/X-Variant`]);
    expect([play.code, play.stdout]).toEqual([0, `X-Variant=${v}\n`]);
  }
});
