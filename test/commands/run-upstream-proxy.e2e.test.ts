/**
 * `--upstream-proxy` with `--upstream-ca`: record reaches an HTTPS origin signed by a private CA
 * through a real CONNECT proxy that asks for credentials, then plays it back with the origin and
 * the proxy gone. The proxy's credentials are in no file of the archive.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { genBodySha256, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const PROXY_PASSWORD = 'PROXYPASS-5d1e';

/**
 * A CONNECT proxy that wants `Proxy-Authorization: Basic u:PROXY_PASSWORD` and sends every
 * tunnel to `target` whatever name it asks for (the origin.test of the test).
 */
function startConnectProxy(target: { host: string }): Promise<{ server: Server; port: number; connects: string[] }> {
  const connects: string[] = [];
  const want = `Basic ${Buffer.from(`u:${PROXY_PASSWORD}`).toString('base64')}`;
  const server = createServer((client: Socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const [method, authority] = lines[0].split(' ');
      const auth = lines.find((l) => l.toLowerCase().startsWith('proxy-authorization:'))?.slice(20).trim();
      connects.push(`${method} ${authority} ${auth === want ? 'authorized' : 'unauthorized'}`);
      if (method !== 'CONNECT' || auth !== want) {
        client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="t"\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const port = Number(authority.slice(authority.lastIndexOf(':') + 1));
      const upstream = connect(port, target.host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head.subarray(end + 4));
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    };
    client.on('data', onData);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, connects })));
}

let origin: Origin;
let proxy: Awaited<ReturnType<typeof startConnectProxy>>;
beforeAll(async () => {
  origin = await startOrigin({ https: true });
  proxy = await startConnectProxy(origin);
});
afterAll(() => new Promise<void>((r) => proxy.server.close(() => r())));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? filesUnder(join(dir, d.name)) : [join(dir, d.name)]));
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

test('record through --upstream-proxy trusts --upstream-ca for the origin, and plays back without either', async () => {
  const archive = join(tmpDir(), 'archive');
  const out = tmpDir();
  const url = `${origin.urlFor('/gen/300000?seed=4', 'origin.test')}`;
  const rec = await runCli([
    'run', '--record', '--tag=via-proxy', '--archive', archive,
    '--upstream-ca', origin.caPath!, '--upstream-proxy', `http://u:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`,
    '--', 'curl', '-sSf', '-o', join(out, 'rec'), url,
  ]);
  expect(proxy.connects).toEqual([`CONNECT origin.test:${origin.port} authorized`]);
  expect(rec.stderr).toMatch(/recorded tag "via-proxy" \(recording [0-9a-f]{12}\): 1 requests, 1 entries/);
  expect(rec.code).toBe(0);
  expect(sha256(join(out, 'rec'))).toBe(await genBodySha256(300000, 4));

  await origin.close();
  await new Promise<void>((r) => proxy.server.close(() => r()));
  const play = await runCli(['run', '--playback', '--tag=via-proxy', '--archive', archive, '--', 'curl', '-sSf', '-o', join(out, 'play'), url]);
  expect(play.stderr).toMatch(/1 hits, 0 misses/);
  expect(play.code).toBe(0);
  expect(sha256(join(out, 'play'))).toBe(sha256(join(out, 'rec')));

  const objects = execFileSync('git', ['--git-dir', archive, 'cat-file', '--batch-all-objects', '--batch'], { maxBuffer: 1 << 26 });
  expect(objects.includes(PROXY_PASSWORD)).toBe(false);
  expect(filesUnder(archive).filter((f) => readFileSync(f).includes(PROXY_PASSWORD))).toEqual([]);
});
