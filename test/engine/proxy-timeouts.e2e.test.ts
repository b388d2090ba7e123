/**
 * The proxy closes clients that hold a connection without using it, inside CONNECT tunnels as
 * on its own port: a tunnel (with a valid session credential) that then sends nothing, half a
 * ClientHello or half a request head, and a kept-alive tunnel left idle. Raw sockets (net, tls)
 * against a real `btrfly run --record`, with short timeouts set through the environment; each
 * case waits for the socket's 'close'. A slow answer and a slow body are not cut.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { cliEnv, spawnCli, startOrigin, tmpDir, type CliProcess, type Origin } from '../helpers';

const HANDSHAKE_MS = 800;
const HEADERS_MS = 1000;
const KEEPALIVE_MS = 600;
/** Timers fire a little early or late; the checks of Node's headers timeout run every HEADERS_MS / 4. */
const SLACK_MS = 100;

/** What a raw client saw: the bytes the proxy sent, and when the socket closed (ms after `since`). */
interface Closed {
  data: string;
  afterMs: number;
}

/** Resolves when `socket` closes, with what it received. */
function untilClosed(socket: net.Socket, since: () => number): Promise<Closed> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (b: Buffer) => (data += b.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve({ data, afterMs: Date.now() - since() }));
  });
}

describe('proxy timeouts inside CONNECT tunnels', () => {
  let origin: Origin;
  let tlsOrigin: Origin;
  let run: CliProcess;
  let proxyPort = 0;
  let auth = '';
  let caPem = '';

  beforeAll(async () => {
    origin = await startOrigin();
    tlsOrigin = await startOrigin({ https: true });
    const archive = join(tmpDir(), 'archive');
    run = spawnCli(
      ['run', '--record', '--tag=idle', '--archive', archive, '--upstream-ca', tlsOrigin.caPath!, '--resolve', 'origin.test:127.0.0.1', '--', 'bash', '-c', 'echo "PROXY=$HTTP_PROXY"; exec sleep 600'],
      { env: { BTRFLY_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_MS), BTRFLY_HEADERS_TIMEOUT_MS: String(HEADERS_MS), BTRFLY_KEEPALIVE_TIMEOUT_MS: String(KEEPALIVE_MS) } },
    );
    await run.waitFor(/PROXY=\S+\n/);
    const proxy = new URL(/PROXY=(\S+)\n/.exec(run.stdout)![1]);
    proxyPort = Number(proxy.port);
    auth = Buffer.from(`${proxy.username}:${proxy.password}`).toString('base64');
    caPem = readFileSync(join(cliEnv().BTRFLY_CONFIG_DIR!, 'ca.pem'), 'utf8');
  });

  afterAll(async () => {
    await run?.stop();
    await origin?.close();
    await tlsOrigin?.close();
  });

  /** A CONNECT to `authority` with the session's credential; resolves once the 200 is read. */
  function openTunnel(authority: string): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(proxyPort, '127.0.0.1');
      let head = '';
      const onData = (b: Buffer) => {
        head += b.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        if (!head.startsWith('HTTP/1.1 200 ')) return reject(new Error(`CONNECT answered ${head}`));
        resolve(socket);
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
    });
  }

  it('closes a tunnel that sends nothing after the 200, after the handshake timeout', async () => {
    const socket = await openTunnel(`origin.test:${tlsOrigin.port}`);
    const start = Date.now();
    const closed = await untilClosed(socket, () => start);
    expect(closed.data).toBe('');
    expect(closed.afterMs).toBeGreaterThanOrEqual(HANDSHAKE_MS - SLACK_MS);
  });

  it('closes a tunnel that sends half a ClientHello', async () => {
    const socket = await openTunnel(`origin.test:${tlsOrigin.port}`);
    // A TLS record header announcing a 512-byte handshake message, and only its first bytes.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    const start = Date.now();
    const closed = await untilClosed(socket, () => start);
    expect(closed.data).toBe('');
    expect(closed.afterMs).toBeGreaterThanOrEqual(HANDSHAKE_MS - SLACK_MS);
  });

  it('answers half a request head in a plain tunnel with 408, then closes', async () => {
    const socket = await openTunnel(`origin.test:${origin.port}`);
    socket.write('GET /gen/10?seed=1 HTTP/1.1\r\nHost: origin.test\r\n');
    const start = Date.now();
    const closed = await untilClosed(socket, () => start);
    expect(closed.data).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(closed.afterMs).toBeGreaterThanOrEqual(HEADERS_MS - SLACK_MS);
  });

  it('answers half a request head after a TLS handshake in the tunnel with 408, then closes', async () => {
    const raw = await openTunnel(`origin.test:${tlsOrigin.port}`);
    const secure = tls.connect({ socket: raw, servername: 'origin.test', ca: caPem });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.write('GET /gen/10?seed=1 HTTP/1.1\r\nHost: origin.test\r\n');
    const start = Date.now();
    const closed = await untilClosed(secure, () => start);
    expect(closed.data).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(closed.afterMs).toBeGreaterThanOrEqual(HEADERS_MS - SLACK_MS);
  });

  it('closes a kept-alive tunnel left idle after an answer, after the keep-alive timeout', async () => {
    const socket = await openTunnel(`origin.test:${origin.port}`);
    let answered = 0;
    const closedP = untilClosed(socket, () => answered);
    socket.once('data', () => (answered = Date.now()));
    socket.write(`GET /gen/10?seed=1 HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`);
    const closed = await closedP;
    expect(closed.data).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(closed.data).toMatch(/\r\nConnection: keep-alive\r\n/i);
    expect(closed.afterMs).toBeGreaterThanOrEqual(KEEPALIVE_MS - SLACK_MS);
  });

  it('answers half a request head on the proxy port itself with 408, then closes', async () => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`GET http://origin.test:${origin.port}/gen/10 HTTP/1.1\r\nProxy-Authorization: Basic ${auth}\r\n`);
    const start = Date.now();
    const closed = await untilClosed(socket, () => start);
    expect(closed.data).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(closed.afterMs).toBeGreaterThanOrEqual(HEADERS_MS - SLACK_MS);
  });

  it('does not cut a slow answer or a slow body, which are the origin taking its time', async () => {
    const proxy = `http://127.0.0.1:${proxyPort}`;
    const ca = join(cliEnv().BTRFLY_CONFIG_DIR!, 'ca.pem');
    const base = `https://origin.test:${tlsOrigin.port}`;
    const total = 3 * (HEADERS_MS + HANDSHAKE_MS + KEEPALIVE_MS);
    // Not execFileSync: the origin runs in this process and must keep answering.
    const curl = async (path: string) =>
      (await promisify(execFile)('curl', ['-sSf', '-x', proxy, '--proxy-header', `Proxy-Authorization: Basic ${auth}`, '--cacert', ca, '-o', '-', '-w', '\n%{http_code}', `${base}${path}`], { encoding: 'latin1' })).stdout;
    expect(await curl(`/slow/${HEADERS_MS + KEEPALIVE_MS}`)).toBe(`slept ${HEADERS_MS + KEEPALIVE_MS} ms\n\n200`);
    expect(await curl(`/drip/1000?chunks=6&intervalMs=${Math.ceil(total / 6)}`)).toBe(`${'*'.repeat(1000)}\n200`);
  });
});
