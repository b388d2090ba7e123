/**
 * Heads that Node's HTTP parser refuses by default, through record and playback with curl: an
 * origin's 40 KiB of response headers (large Set-Cookie, Link or CSP headers; curl reads them
 * straight from the origin) is recorded and played back, and a request the proxy cannot read
 * (curl sends a raw `é` in the URL to a proxy) gets one line that says why and what to do.
 */
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

const LINK = Array.from({ length: 800 }, (_, i) => `<https://heads.test/page/${i}>; rel="item"`).join(', ');

let server: http.Server;
let port: number;
beforeAll(async () => {
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', Link: LINK, 'Content-Length': 3 });
    res.end('ok\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('an origin head of 40 KiB plays back whole; a URL the proxy cannot read gets a one-line answer', async () => {
  expect(LINK.length).toBeGreaterThan(32 * 1024);
  const dir = tmpDir();
  const archive = join(dir, 'archive');
  const url = `http://heads.test:${port}/list`;
  const fetch = (out: string): string => `curl -sS -D ${dir}/${out} -o /dev/null ${url}`;
  const rec = await runCli(['run', '--record', '--tag=heads', '--archive', archive, '--resolve', 'heads.test:127.0.0.1', '--', 'sh', '-c', `${fetch('rec.head')} && curl -sS -w '%{http_code}\\n' 'http://heads.test:${port}/café'`]);
  expect(rec.code).toBe(0);
  expect(rec.stdout).toBe('btrfly: the request is not valid HTTP/1.1 (Invalid char in url path): percent-encode characters outside ASCII in the URL (é is %C3%A9)\n400\n');
  const link = (file: string): string | undefined => /^link: (.*)\r$/im.exec(readFileSync(join(dir, file), 'latin1'))?.[1];
  expect(link('rec.head')).toBe(LINK);
  await new Promise<void>((resolve) => server.close(() => resolve()));

  const back = await runCli(['run', '--playback', '--tag=heads', '--archive', archive, '--', 'sh', '-c', fetch('play.head')]);
  expect(back.stderr).toMatch(/1 hits, 0 misses/);
  expect(back.code).toBe(0);
  expect(link('play.head')).toBe(LINK);
});
