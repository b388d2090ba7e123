/**
 * The proxy tells its own upstream connections (a loop back into itself) from other clients by
 * both ends of the connection, not by a port number on loopback:
 * - a client on 127.0.0.2 whose port happens to be the local port of a live upstream connection
 *   on ::1 is served, not refused as a loop (it was dropped without an answer);
 * - a proxy listening on the host's own address (as `btrfly serve --address` does) refuses its
 *   own connection to that address: the name that resolves there gets an upstream error and
 *   nothing is recorded (before, the proxy answered its own forwarded request with 407 and that
 *   answer was recorded).
 * - a proxy on the dual-stack wildcard (`::`) sees its own IPv4 connection as ::ffff:127.0.0.1,
 *   and refuses it all the same.
 * Real runtime, real sockets, curl as the build's client.
 */
import * as http from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../src/engine/session/runtime';
import { Archive } from '../../src/format/archive';
import { registerCleanup, run, tmpDir } from '../helpers';
import { testWhen } from '../helpers/when';

/** The runtime over a new archive, closed at the end of the test file. */
async function startRuntime(opts: Partial<Parameters<typeof Runtime.start>[0]> = {}): Promise<{ runtime: Runtime; archive: Archive }> {
  const archive = await Archive.open(join(tmpDir('btrfly-loop-'), 'archive'), { create: true });
  const runtime = await Runtime.start({ archive, configDir: tmpDir('btrfly-loop-config-'), ...opts });
  registerCleanup(async () => {
    await runtime.close();
    await archive.close();
  });
  return { runtime, archive };
}

async function entries(archive: Archive, tag: string): Promise<string[]> {
  const recording = await archive.readRecording(tag, await archive.resolveCommit(tag));
  return recording.manifest.entries.map((e) => `${e.response.status} ${e.request.url}`);
}

test('a client whose port number is that of a live upstream connection on another address is served', async () => {
  // An origin on ::1 that answers /hold with its head (naming the port our upstream connection
  // comes from) and keeps the body open until released, so that connection stays in use.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const origin = http.createServer((req, res) => {
    if (req.url === '/hold') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-peer-port': String(req.socket.remotePort) });
      res.write('start\n'); // the proxy sends the head with the first bytes of the body
      void released.then(() => res.end('held\n'));
    } else res.end('other\n');
  });
  await new Promise<void>((r) => origin.listen(0, '::1', r));
  registerCleanup(() => new Promise<void>((r) => (origin.closeAllConnections(), origin.close(() => r()))));
  const base = `http://[::1]:${(origin.address() as { port: number }).port}`;

  const { runtime, archive } = await startRuntime();
  const opened = await runtime.openSession({ tag: 'ports', mode: 'record' });
  const proxy = new URL(opened.proxyUrl!);
  expect(proxy.hostname).toBe('127.0.0.1');

  const held = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      path: `${base}/hold`,
      headers: { 'proxy-authorization': `Basic ${Buffer.from(`${proxy.username}:${proxy.password}`).toString('base64')}` },
    });
    req.once('response', resolve).once('error', reject).end();
  });
  expect(held.statusCode).toBe(200);
  const port = held.headers['x-peer-port'] as string;
  expect(port).toMatch(/^\d+$/);

  // Another client on loopback from that same port number: not the proxy's connection. (From
  // 127.0.0.2: on 127.0.0.1 the port may be the one this test's own client got.)
  const other = await run('curl', ['-sS', '--local-port', port, '--interface', '127.0.0.2', '-x', opened.proxyUrl!, '-w', ' %{http_code}', `${base}/other`]);
  expect(`${other.stdout} ${other.stderr}`.trim()).toBe('other\n 200');

  release();
  const body = await new Promise<string>((resolve) => {
    let text = '';
    held.setEncoding('utf8').on('data', (s: string) => (text += s)).on('end', () => resolve(text));
  });
  expect(body).toBe('start\nheld\n');
  await runtime.closeSession(opened.info.id);
  expect(await entries(archive, 'ports')).toEqual([`200 ${base}/hold`, `200 ${base}/other`]);
}, 60_000);

/** A non-loopback address of this host, IPv4 first. */
function hostAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((a) => !a.internal && !a.address.startsWith('fe80:'));
  return (all.find((a) => a.family === 'IPv4') ?? all[0])?.address;
}

const address = hostAddress();
testWhen(!address && 'a network interface with a non-loopback address')('a proxy on the host\'s own address refuses its own upstream connection to that address', async () => {
  const { runtime, archive } = await startRuntime({ address: address!, upstream: { resolve: [`self.test:${address!}`] } });
  const opened = await runtime.openSession({ tag: 'self', mode: 'record' });
  const proxy = new URL(opened.proxyUrl!);
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '-x', opened.proxyUrl!, `http://self.test:${proxy.port}/d`]);
  expect(r.stdout).toMatch(/^HTTP\/1\.1 502 /);
  expect(r.stdout).toMatch(/^x-btrfly-upstream-error: /im);
  await runtime.closeSession(opened.info.id);
  expect(await entries(archive, 'self')).toEqual([]);
}, 60_000);

test('a proxy on the dual-stack wildcard refuses its own connection over IPv4 (seen as ::ffff:127.0.0.1)', async () => {
  const { runtime, archive } = await startRuntime({ address: '::', upstream: { resolve: ['self.test:127.0.0.1'] } });
  const opened = await runtime.openSession({ tag: 'mapped', mode: 'record' });
  const proxy = new URL(opened.proxyUrl!);
  const viaV4 = `http://btrfly:${proxy.password}@127.0.0.1:${proxy.port}`;
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '-x', viaV4, `http://self.test:${proxy.port}/d`]);
  expect(r.stdout).toMatch(/^HTTP\/1\.1 502 /);
  expect(r.stdout).toMatch(/^x-btrfly-upstream-error: /im);
  await runtime.closeSession(opened.info.id);
  expect(await entries(archive, 'mapped')).toEqual([]);
}, 60_000);
