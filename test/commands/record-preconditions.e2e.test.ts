/**
 * A write's precondition reaches the origin in record: `curl -X PUT -H 'If-None-Match: *'`
 * (create, never overwrite) against an object that exists gets the origin's 412, and no
 * overwrite happens; playback answers the same 412. Record answers a GET's `Range` and `If-*`
 * itself from a whole body, but a PUT's `If-*` guards a change on the origin, not a body.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

let server: http.Server;
let port: number;
const writes: string[] = [];
beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      if (req.method === 'PUT' && req.headers['if-none-match'] === '*') {
        res.writeHead(412, { 'Content-Type': 'text/plain', 'Content-Length': 7 });
        return void res.end('exists\n');
      }
      writes.push(`${req.method} ${req.url}`);
      res.writeHead(201, { 'Content-Type': 'text/plain', 'Content-Length': 8 });
      res.end('written\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a PUT with If-None-Match: * gets the origin 412 at record and at playback, and overwrites nothing', async () => {
  const archive = join(tmpDir(), 'archive');
  const put = `curl -sS -w ' %{http_code}\\n' -X PUT -H 'If-None-Match: *' --data-binary release http://store.test:${port}/releases/1.0.tar.gz`;
  const rec = await runCli(['run', '--record', '--tag=put', '--archive', archive, '--resolve', 'store.test:127.0.0.1', '--', 'sh', '-c', put]);
  expect(rec.code).toBe(0);
  expect(rec.stdout).toBe('exists\n 412\n');
  expect(writes).toEqual([]);
  await new Promise<void>((resolve) => server.close(() => resolve()));

  const back = await runCli(['run', '--playback', '--tag=put', '--archive', archive, '--', 'sh', '-c', put]);
  expect(back.stderr).toMatch(/1 hits, 0 misses/);
  expect(back.stdout).toBe('exists\n 412\n');
});
