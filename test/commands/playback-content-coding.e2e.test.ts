/**
 * A body recorded with a `Content-Encoding`, played back to real clients: the client that
 * recorded it gets the coded bytes again, even when its `Accept-Encoding` did not name the
 * coding (an origin that gzips whatever it is asked, as object stores serving a `.tar.gz` do;
 * python's urllib asks `identity`), and a client that names no coding gets the decoded body
 * from an origin that negotiated (`Vary: Accept-Encoding`), as that origin would have sent it.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli, tmpDir } from '../helpers';

const TEXT = Buffer.from(Array.from({ length: 300 }, (_, i) => `line ${i} of a coded body\n`).join(''));
const GZIPPED = gzipSync(TEXT);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let server: http.Server;
let port: number;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/always.tar.gz') {
      // Coded whatever the client accepts, and no Vary: the answer does not depend on the request.
      res.writeHead(200, { 'Content-Type': 'application/x-tar', 'Content-Encoding': 'gzip', 'Content-Length': GZIPPED.length });
      return void res.end(GZIPPED);
    }
    const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    const body = gzip ? GZIPPED : TEXT;
    res.writeHead(200, { 'Content-Type': 'text/plain', Vary: 'Accept-Encoding', 'Content-Length': body.length, ...(gzip && { 'Content-Encoding': 'gzip' }) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('the recording client gets the coded bytes again; a client that names no coding gets what a negotiating origin sends it', async () => {
  const dir = tmpDir();
  const archive = join(dir, 'archive');
  const always = `http://coding.test:${port}/always.tar.gz`;
  const negotiated = `http://coding.test:${port}/negotiated.txt`;
  const python = (out: string): string => `python3 -c "import urllib.request; open('${out}', 'wb').write(urllib.request.urlopen('${always}').read())"`;
  const record = [python(`${dir}/py.rec`), `curl -sS --compressed -o ${dir}/curl.rec ${negotiated}`].join(' && ');
  const rec = await runCli(['run', '--record', '--tag=coding', '--archive', archive, '--resolve', 'coding.test:127.0.0.1', '--', 'sh', '-c', record]);
  expect(rec.stderr).not.toMatch(/error/i);
  expect(rec.code).toBe(0);
  expect(sha(readFileSync(join(dir, 'py.rec')))).toBe(sha(GZIPPED)); // urllib does not decode: the origin's bytes
  expect(readFileSync(join(dir, 'curl.rec'))).toEqual(TEXT);
  await new Promise<void>((resolve) => server.close(() => resolve()));

  // The same python request; curl without --compressed sends no Accept-Encoding (the origin sent it plain text).
  const play = [python(`${dir}/py.play`), `curl -sS -D ${dir}/curl.head -o ${dir}/curl.play ${negotiated}`].join(' && ');
  const back = await runCli(['run', '--playback', '--tag=coding', '--archive', archive, '--', 'sh', '-c', play]);
  expect(back.stderr).toMatch(/2 hits, 0 misses/);
  expect(back.code).toBe(0);
  expect(sha(readFileSync(join(dir, 'py.play')))).toBe(sha(GZIPPED));
  expect(readFileSync(join(dir, 'curl.play'))).toEqual(TEXT);
  expect(readFileSync(join(dir, 'curl.head'), 'latin1')).not.toMatch(/content-encoding/i);
});
