/**
 * What record sends upstream and what it stores, against an origin that writes its HTTP/1.1
 * bytes by hand on loopback (plain and TLS): the request's headers reach the origin as the
 * client wrote them (names, case, order, repeats; hop-by-hop ones dropped), the response is
 * stored as the origin sent it (status text, header names with their case and order, repeats,
 * a chunked body's bytes), no client gets a Date the origin did not send (record or playback),
 * and a body the origin cuts off is not recorded at all (also one without a length that a
 * reset ends).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { run, runCli, testCa, tmpDir } from '../helpers';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The origin's answer to /headers: names in mixed case, repeats interleaved, chunked. */
const HEAD = [
  'HTTP/1.1 200 Fine Thanks',
  'X-Mixed-CASE: one',
  'set-cookie: a=1; Path=/',
  'Content-Type: text/plain',
  'x-mixed-case: two',
  'Set-Cookie: b=2',
  'Transfer-Encoding: chunked',
  'ETag: "v1"',
];
const RECORDED = HEAD.slice(1).filter((l) => !l.startsWith('Transfer-Encoding')).map((l) => {
  const i = l.indexOf(': ');
  return { name: l.slice(0, i), value: l.slice(i + 2) };
});
const CHUNKS = [randomBytes(5000), Buffer.from('middle\n'), randomBytes(70_000)];
const CUT_BODY = randomBytes(30_000);

interface RawOrigin {
  port: number;
  /** The header lines of each request the origin received, by path and query. */
  heads: Map<string, string[]>;
  close(): Promise<void>;
}

/** A hand-written HTTP/1.1 origin: keep-alive, GET only. */
async function rawOrigin(secure: boolean): Promise<RawOrigin> {
  const heads = new Map<string, string[]>();
  const sockets = new Set<net.Socket>();
  /** `tcp`: the connection under `socket` (its TLS), for a reset. */
  const serve = (socket: net.Socket, tcp: net.Socket = socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
        buffered = buffered.subarray(end + 4);
        const target = new URL(lines[0].split(' ')[1], 'http://x');
        const path = target.pathname;
        heads.set(path + target.search, lines.slice(1));
        if (path === '/headers') {
          socket.write(HEAD.join('\r\n') + '\r\n\r\n');
          for (const c of CHUNKS) socket.write(Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
          socket.write('0\r\n\r\n');
        } else if (path === '/cut') {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\n');
          socket.end(CUT_BODY, () => socket.destroy());
        } else if (path === '/cut-close') {
          // A body that ends with the connection, which is reset part way.
          socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n');
          socket.write(CUT_BODY, () => tcp.resetAndDestroy());
        } else {
          socket.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        }
      }
    });
    socket.on('error', () => {});
  };
  let server: net.Server;
  if (secure) {
    const cert = testCa().issue();
    // TLS over a socket of our own: only a TCP socket can be reset.
    server = net.createServer((tcp) => serve(new tls.TLSSocket(tcp, { isServer: true, key: cert.keyPem, cert: cert.certPem }), tcp));
  } else server = net.createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe.each([
  ['plain HTTP', false],
  ['HTTPS in a CONNECT tunnel', true],
])('record against a hand-written origin (%s)', (_label, secure) => {
  let origin: RawOrigin;
  let dir: string;

  beforeAll(async () => {
    origin = await rawOrigin(secure);
    dir = tmpDir();
  });
  afterAll(() => origin.close());

  test('sends the client headers as written, stores the answer as sent, and no cut-off body', async () => {
    const archive = join(dir, 'archive');
    const base = `${secure ? 'https' : 'http'}://origin.test:${origin.port}`;
    const upstream = ['--resolve', 'origin.test:127.0.0.1', ...(secure ? ['--upstream-ca', testCa().caPath] : [])];
    // Two requests on one kept-alive connection, then the cut one; the run itself succeeds.
    const curl =
      `curl -sS -v -o ${dir}/headers.out -H 'User-Agent: raw-test' -H 'X-Order-B: 2' -H 'x-order-a: 1' -H 'X-Dup: one' -H 'x-dup: two' ${base}/headers ` +
      `--next -sS -o /dev/null ${base}/headers?again=1 2> ${dir}/curl.txt; ` +
      `curl -sS -o /dev/null ${base}/cut; echo "cut exit $?"; curl -sS -o /dev/null ${base}/cut-close; echo "cut-close exit $?"`;
    const rec = await runCli(['run', '--record', '--tag=raw', '--archive', archive, ...upstream, '--', 'sh', '-c', curl], { timeoutMs: 120_000 });
    // curl: partial file; the reset one fails too, as it does straight from the origin.
    expect(rec.stdout).toMatch(/^cut exit 18\ncut-close exit [1-9][0-9]*\n$/);
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'headers.out'))).toEqual(Buffer.concat(CHUNKS));

    // The request head upstream: the client's lines as curl -v shows them, byte for byte and in
    // its order, hop-by-hop ones (Proxy-Authorization, Proxy-Connection) dropped, and Node's
    // `Connection: keep-alive` at the end. (undici's client wrote `host:` first in lower case and
    // its own `connection: keep-alive` second: docs/decisions.md, "Upstream through undici".)
    const sent = readFileSync(join(dir, 'curl.txt'), 'latin1').split('\n').map((l) => l.replace(/\r$/, ''));
    const start = sent.findIndex((l) => /^> GET \S*\/headers HTTP\/1\.1$/.test(l));
    const clientLines = sent.slice(start + 1, sent.indexOf('> ', start)).map((l) => l.slice(2));
    expect(clientLines).toEqual(expect.arrayContaining(['X-Order-B: 2', 'x-order-a: 1', 'X-Dup: one', 'x-dup: two', 'User-Agent: raw-test']));
    const hop = /^(proxy-authorization|proxy-connection|connection|keep-alive):/i;
    expect(origin.heads.get('/headers')).toEqual([...clientLines.filter((l) => !hop.test(l)), 'Connection: keep-alive']);

    const show = async (file: string) => JSON.parse((await run('git', ['--git-dir', archive, 'show', `refs/heads/raw:${file}`])).stdout);
    const manifest = await show('manifest.json');
    const volatile = await show('volatile.json');
    const urls = manifest.entries.map((e: { request: { url: string } }) => e.request.url).sort();
    expect(urls).toEqual([`${base}/headers`, `${base}/headers?again=1`]);
    const entry = manifest.entries.find((e: { request: { url: string } }) => e.request.url === `${base}/headers`);
    expect(entry.response.status).toBe(200);
    expect(entry.response.statusText).toBe('Fine Thanks');
    expect(entry.response.content.sha256).toBe(sha256(Buffer.concat(CHUNKS)));
    expect(entry.response.content.size).toBe(Buffer.concat(CHUNKS).length);
    // The kept headers and the volatile ones (Set-Cookie), merged back by position: as received.
    const merged = [...entry.response.headers];
    const key = `GET ${base}/headers #${entry.ordinal}`;
    for (const v of volatile.entries[key] ?? []) merged.splice(v.index, 0, { name: v.name, value: v.value });
    expect(merged).toEqual(RECORDED);

    // The origin sent no Date: the client got none at record, nor at playback (not this run's clock).
    expect(sent.filter((l) => /^< date:/i.test(l))).toEqual([]);
    const play = await runCli(['run', '--playback', '--tag=raw', '--archive', archive, '--', 'curl', '-sS', '-D', '-', '-o', '/dev/null', `${base}/headers`]);
    expect(play.code).toBe(0);
    expect(play.stdout).toMatch(/^set-cookie: a=1; Path=\/\r$/m);
    expect(play.stdout).not.toMatch(/^date:/im);
  }, 180_000);
});
