/**
 * `Expect: 100-continue` on the record path: a POST whose body the client holds back until the
 * proxy says "100 Continue", sent on a kept-alive connection that has just carried a slow
 * download. The origin must receive exactly the client's bytes, the recording must hold their
 * digest and the origin's answer, and playback must match the same POST. Real curl and Node's
 * http client, through the explicit proxy (plain HTTP and HTTPS in a CONNECT tunnel).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Node's http client: a slow download, then on the same socket a POST that waits for 100 Continue. */
const NODE_CLIENT = `
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const [base, bodyFile, outFile] = process.argv.slice(2);
const proxy = new URL(process.env.HTTP_PROXY);
const target = new URL(base);
const body = fs.readFileSync(bodyFile);
(async () => {
  let agent;
  if (target.protocol === 'https:') {
    // A CONNECT tunnel by hand, kept for both requests.
    const socket = await new Promise((resolve, reject) => {
      const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: target.host,
        headers: { 'proxy-authorization': 'Basic ' + Buffer.from(decodeURIComponent(proxy.username) + ':' + decodeURIComponent(proxy.password)).toString('base64') } });
      req.once('connect', (res, s) => (res.statusCode === 200 ? resolve(s) : reject(new Error('CONNECT ' + res.statusCode))));
      req.once('error', reject);
      req.end();
    });
    agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    agent.createConnection = (o) => require('node:tls').connect({ socket, servername: target.hostname, ca: fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS) });
  } else agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const viaProxy = target.protocol === 'http:';
  const auth = 'Basic ' + Buffer.from(decodeURIComponent(proxy.username) + ':' + decodeURIComponent(proxy.password)).toString('base64');
  const opts = (path, extra) => viaProxy
    ? { host: proxy.hostname, port: proxy.port, path: base + path, agent, headers: { host: target.host, 'proxy-authorization': auth, ...extra } }
    : { host: target.hostname, port: target.port, path, agent, headers: extra };
  const mod = viaProxy ? http : https;
  const sockets = new Set();
  await new Promise((resolve, reject) => {
    const req = mod.get(opts('/drip/200000?chunks=20&intervalMs=40', {}), (res) => { sockets.add(res.socket); res.resume(); res.on('end', resolve); });
    req.on('error', reject);
  });
  const answer = await new Promise((resolve, reject) => {
    const req = mod.request({ ...opts('/echo', { expect: '100-continue', 'content-type': 'application/octet-stream', 'content-length': body.length }), method: 'POST' }, (res) => {
      sockets.add(res.socket);
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    let continued = false;
    req.on('continue', () => { continued = true; req.end(body); });
    req.on('error', reject);
    req.on('close', () => { if (!continued) reject(new Error('no 100 Continue')); });
  });
  fs.writeFileSync(outFile, JSON.stringify({ ...answer, sockets: sockets.size }));
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe.each([
  ['plain HTTP', false],
  ['HTTPS in a CONNECT tunnel', true],
])('record: POST with Expect: 100-continue after a slow download on the same connection (%s)', (_label, https) => {
  let origin: Origin;
  let dir: string;
  let archive: string;
  let body: Buffer;
  let upstream: string[];
  let base: string;

  beforeAll(async () => {
    origin = await startOrigin({ https });
    dir = tmpDir();
    archive = join(dir, 'archive');
    body = randomBytes(200 * 1024 + 7);
    writeFileSync(join(dir, 'body.bin'), body);
    writeFileSync(join(dir, 'client.js'), NODE_CLIENT);
    base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    upstream = ['--resolve', `origin.test:${origin.host}`, ...(https ? ['--upstream-ca', origin.caPath!] : [])];
  });

  afterAll(() => origin.close());

  test('curl: the origin and the recording get exactly the body, and playback matches it', async () => {
    // One curl, two transfers (--next) on one kept-alive connection: num_connects 0 for the second.
    const curl = (out: string) =>
      `curl -sS --fail -o /dev/null -w 'drip connects %{num_connects}\\n' "${base}/drip/200000?chunks=20&intervalMs=40" ` +
      `--next -sS --fail -H 'Expect: 100-continue' -H 'Content-Type: application/octet-stream' --data-binary @${dir}/body.bin ` +
      `-o ${out} -w 'post connects %{num_connects} status %{http_code}\\n' "${base}/echo"`;
    const rec = await runCli(['run', '--record', '--tag=curl', '--archive', archive, ...upstream, '--', 'sh', '-c', curl(join(dir, 'rec.json'))], { timeoutMs: 120_000 });
    expect(rec.stdout).toBe('drip connects 1\npost connects 0 status 200\n');
    expect(rec.code).toBe(0);
    const echoed = JSON.parse(readFileSync(join(dir, 'rec.json'), 'utf8'));
    expect(echoed).toEqual({ method: 'POST', bytes: body.length, sha256: sha256(body), contentType: 'application/octet-stream' });

    const manifest = JSON.parse((await run('git', ['--git-dir', archive, 'show', 'refs/heads/curl:manifest.json'])).stdout);
    const post = manifest.entries.find((e: { request: { method: string } }) => e.request.method === 'POST');
    expect(post.request.bodySha256).toBe(sha256(body));
    expect(post.response.content.sha256).toBe(sha256(readFileSync(join(dir, 'rec.json'))));

    const play = await runCli(['run', '--playback', '--tag=curl', '--archive', archive, '--', 'sh', '-c', curl(join(dir, 'play.json'))], { timeoutMs: 120_000 });
    expect(play.stderr).toMatch(/2 hits, 0 misses/);
    expect(play.code).toBe(0);
    expect(readFileSync(join(dir, 'play.json'))).toEqual(readFileSync(join(dir, 'rec.json')));
  }, 180_000);

  test("Node's http client: the origin and the recording get exactly the body", async () => {
    const rec = await runCli(['run', '--record', '--tag=node', '--archive', archive, ...upstream, '--', process.execPath, join(dir, 'client.js'), base, join(dir, 'body.bin'), join(dir, 'node.json')], { timeoutMs: 120_000 });
    expect(rec.stderr).toMatch(/recorded tag "node"/);
    expect(rec.code).toBe(0);
    const answer = JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8'));
    expect(answer.sockets).toBe(1);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ method: 'POST', bytes: body.length, sha256: sha256(body), contentType: 'application/octet-stream' });
    const manifest = JSON.parse((await run('git', ['--git-dir', archive, 'show', 'refs/heads/node:manifest.json'])).stdout);
    const post = manifest.entries.find((e: { request: { method: string } }) => e.request.method === 'POST');
    expect(post.request.bodySha256).toBe(sha256(body));
    expect(post.response.content.sha256).toBe(sha256(Buffer.from(answer.body)));
  }, 180_000);
});
