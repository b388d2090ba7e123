/**
 * The service API's guards, against a real `btrfly serve` on loopback (from a config file, every
 * port 0) with real tokens, an HTTP test origin and real HTTPS calls: who may record, what a
 * session request may carry, what a listing shows to which team, what a tunnel may do after its
 * session ended, who may discard, and how malformed calls are answered.
 */
import { existsSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { Runtime } from '../../src/engine/session/runtime';
import { Archive } from '../../src/format/archive';
import { createToken, runCli, runOk, serviceDir, startOrigin, startService, tmpDir, type CliProcess, type Origin } from '../helpers';

describe('the btrfly service API on loopback', () => {
  const serveDir = serviceDir('btrfly-service-api-');
  const { archive, tokens } = serveDir;
  let origin: Origin;
  let service: CliProcess;
  let api = '';
  let proxyPort = 0;
  let caPem = '';
  const token = { admin: '', teamA: '', teamA2: '', playA: '', teamB: '' };

  /** One call to the API: `body` a value (sent as JSON) or raw bytes with the given headers. */
  const call = (tok: string, method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      const h: Record<string, string | number> = { authorization: `Bearer ${tok}`, ...headers };
      if (payload && !Buffer.isBuffer(body)) h['content-type'] = 'application/json';
      if (payload) h['content-length'] = payload.length;
      const req = https.request(new URL(urlPath, api), { method, headers: h, ca: caPem }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text || '{}') }));
      });
      req.once('error', reject);
      req.end(payload);
    });
  const open = async (tok: string, body: unknown) => {
    const r = await call(tok, 'POST', '/v1/sessions', body);
    expect(r).toMatchObject({ status: 201 });
    return (r.json.session as { id: string }).id;
  };
  const close = (tok: string, id: string, query = '') => call(tok, 'DELETE', `/v1/sessions/${id}${query}`);
  /** Fetches `p` from the origin through the proxy (absolute-form, this host's session by source address). */
  const fetchVia = (p: string) => rawExchange(net.connect(proxyPort, '127.0.0.1'), `GET ${origin.url}${p} HTTP/1.1\r\nHost: ${origin.host}:${origin.port}\r\nConnection: close\r\n\r\n`);
  const record = async (tag: string, paths: string[]) => {
    const id = await open(token.admin, { tag, mode: 'record' });
    for (const p of paths) expect((await fetchVia(p)).status).toBe(200);
    expect((await close(token.admin, id)).status).toBe(200);
  };

  beforeAll(async () => {
    origin = await startOrigin();
    const create = (scope: string, tags: string) => createToken(tokens, scope, tags);
    token.admin = await create('admin', '*');
    token.teamA = await create('record,playback', 'team-a/*');
    token.teamA2 = await create('record,playback', 'team-a/*');
    token.playA = await create('playback', 'team-a/*');
    token.teamB = await create('record,playback', 'team-b/*');
    // The origin is on the service host's loopback, which serve refuses to record from by default.
    ({ service, proxyPort, api, caPem } = await startService(serveDir, { address: '127.0.0.1' }, ['--allow-upstream', '127.0.0.0/8']));
    await record('team-a/app', ['/counter']);
    await record('team-b/secret', ['/counter']);
  }, 120_000);

  test('a playback-only token may play back but not append (which records): 403 in one line', async () => {
    const r = await call(token.playA, 'POST', '/v1/sessions', { tag: 'team-a/app', mode: 'playback', append: true });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/^token [0-9a-f]{12} may not record \(its scopes: playback\)[^\n]*$/) });
    const id = await open(token.playA, { tag: 'team-a/app', mode: 'playback' });
    expect((await close(token.playA, id)).status).toBe(200);
    const id2 = await open(token.teamA, { tag: 'team-a/app', mode: 'playback', append: true });
    expect((await close(token.teamA, id2)).status).toBe(200);
  });

  test('a session request is checked before anything opens: a bad value is a 400 in one line and the tag stays usable', async () => {
    const bad: unknown[] = [
      { tag: 'team-a/app', mode: 'record', redactHeaders: [''] },
      { tag: 'team-a/app', mode: 'record', redactQuery: [1] },
      { tag: 'team-a/app', mode: 'record', rules: [{ host: '' }] },
      { tag: 'team-a/app', mode: 'record', rules: [{ host: 'a.test', ignoreQuery: 'x' }] },
      { tag: 'team-a/app', mode: 'record', redactHeaders: 'authorization' },
      { tag: 'team-a/app', mode: 'record', rules: { host: 'a.test' } },
      { tag: 'team-a/app', mode: 'record', redactHeaders: Array.from({ length: 101 }, (_, i) => `x-h${i}`) },
      { tag: 'team-a/app', mode: 'record', append: 'yes' },
      { tag: 'team-a/app', mode: 'replay' },
      { tag: 7, mode: 'record' },
      { tag: 'team-a/app', mode: 'record', clients: ['10.0.0.9'] },
      ['team-a/app'],
    ];
    for (const body of bad) {
      const r = await call(token.teamA, 'POST', '/v1/sessions', body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(r.json.error).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/^the session request is invalid: [^\n]+$/) });
    }
    // Nothing was sealed and no lock is left: the tag records, and reads back, as before.
    const id = await open(token.teamA, { tag: 'team-a/app', mode: 'record', append: true, redactHeaders: ['X-Secret'], rules: [{ host: 'a.test', ignoreQuery: ['t'] }] });
    expect((await fetchVia('/counter')).status).toBe(200);
    expect((await close(token.teamA, id)).status).toBe(200);
    const log = await call(token.teamA, 'GET', '/v1/log?tag=team-a/app');
    expect(log.status).toBe(200);
  });

  test('listings: a team-a token never sees team-b names, even when team-b is broken; a broken tag is listed with its error', async () => {
    // Another team's tag whose newest recording has a manifest that is not JSON.
    const git = (args: string[], input?: string) => runOk('git', ['--git-dir', archive, ...args], { input }).then((r) => r.stdout.trim());
    const blob = await git(['hash-object', '-w', '--stdin'], '{broken');
    const tree = await git(['mktree'], `100644 blob ${blob}\tmanifest.json\n`);
    const parent = await git(['rev-parse', 'refs/heads/team-b/secret']);
    await git(['update-ref', 'refs/heads/team-b/secret', await git(['commit-tree', tree, '-p', parent, '-m', 'broken'])]);

    for (const urlPath of ['/v1/tags', '/v1/storage']) {
      const a = await call(token.teamA, 'GET', urlPath);
      expect(a.status).toBe(200);
      expect(JSON.stringify(a.json)).not.toContain('team-b');
      const admin = await call(token.admin, 'GET', urlPath);
      expect(admin.status).toBe(200);
      const tags = (urlPath === '/v1/tags' ? admin.json : admin.json.tags) as unknown as { tag: string; error?: string }[];
      expect(tags.map((t) => t.tag)).toEqual(['team-a/app', 'team-b/secret']);
      expect(tags[0].error).toBeUndefined();
      expect(tags[1].error).toMatch(/^tag "team-b\/secret": its newest recording [0-9a-f]+ cannot be read \(manifest of tag "team-b\/secret"[^\n]* is invalid: manifest.json is not JSON/);
      expect(tags[1].error).toContain('btrfly verify --repair team-b/secret');
    }
  });

  test('a kept-alive CONNECT tunnel is refused once its session has ended, and closed', async () => {
    const id = await open(token.teamA, { tag: 'team-a/tunnel', mode: 'record' });
    const authority = `${origin.host}:${origin.port}`;
    const socket = net.connect(proxyPort, '127.0.0.1');
    const connected = await new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString('latin1'))).write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    expect(connected).toMatch(/^HTTP\/1.1 200 /);
    const get = `GET /counter HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
    expect(await rawExchange(socket, get)).toMatchObject({ status: 200, body: expect.stringMatching(/^count \d+/) });
    expect((await close(token.teamA, id)).status).toBe(200);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const after = await rawExchange(socket, get);
    expect(after.status).toBe(403);
    expect(after.headers).toMatch(/\r\nx-btrfly: refused/i);
    expect(after.body).toMatch(/^btrfly: the session of this tunnel \([0-9a-f-]+\) has ended/);
    await closed;
  });

  test('revoking a token ends the sessions it opened: the recording is sealed, the host gets no more proxy access', async () => {
    const revokable = await createToken(tokens, 'record', 'team-a/*');
    const tokenId = /^btf_([0-9a-f]{12})_/.exec(revokable)![1];
    const id = await open(revokable, { tag: 'team-a/revoked', mode: 'record' });
    expect((await fetchVia('/counter')).status).toBe(200);
    const revoke = await runCli(['token', 'revoke', tokenId, '--tokens', tokens]);
    expect(revoke).toMatchObject({ code: 0, stderr: expect.stringContaining(`revoked token ${tokenId}`) });
    // The periodic sweep ends it with no API call in between; then the listing shows it gone.
    await service.waitFor(new RegExp(`session ended: its token was revoked[^\\n]*${id}|${id}[^\\n]*session ended: its token was revoked`), 15_000);
    const deadline = Date.now() + 15_000;
    const live = async () => ((await call(token.admin, 'GET', '/v1/status')).json.sessions as { id: string }[]).map((s) => s.id);
    while ((await live()).includes(id)) {
      if (Date.now() > deadline) throw new Error(`session ${id} still live 15 s after its token was revoked`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const line = (service.stdout + service.stderr).split('\n').find((l) => l.includes('session ended: its token was revoked') && l.includes(id))!;
    expect(line).toContain('team-a/revoked');
    expect(line).toContain(tokenId);
    const after = await fetchVia('/counter');
    expect(after.status).toBe(407);
    expect(after.headers).toMatch(/\r\nx-btrfly: refused/i);
    // What was recorded before the revocation was sealed onto the tag.
    const rec = await call(token.admin, 'GET', '/v1/recording?spec=team-a/revoked');
    expect(rec).toMatchObject({ status: 200, json: { tag: 'team-a/revoked', entries: [{ method: 'GET', url: `${origin.url}/counter`, status: 200 }] } });
    expect((await call(revokable, 'GET', '/v1/status')).status).toBe(401);
  });

  test('a second session from the same address is refused without naming another team\'s tag or session', async () => {
    const id = await open(token.teamA, { tag: 'team-a/shared-host', mode: 'record' });
    try {
      const other = await call(token.teamB, 'POST', '/v1/sessions', { tag: 'team-b/shared-host', mode: 'record' });
      expect(other.status).toBe(409);
      expect(other.json.error).toEqual({
        code: 'SESSION',
        message: 'client 127.0.0.1 is already in a session of a tag this token does not cover: it must end first ("btrfly stop" on the host that started it)',
      });
      // The team that may read the tag is told which session it is.
      const same = await call(token.teamA2, 'POST', '/v1/sessions', { tag: 'team-a/other', mode: 'record' });
      expect(same.json.error).toMatchObject({ code: 'SESSION', message: expect.stringContaining(`session ${id} (tag "team-a/shared-host")`) });
    } finally {
      expect((await close(token.teamA, id, '?discard=1')).status).toBe(200);
    }
  });

  test('only the token that opened a session, or an admin, may discard it; another token of the team may end it', async () => {
    const id = await open(token.teamA, { tag: 'team-a/discard', mode: 'record' });
    const r = await close(token.teamA2, id, '?discard=1');
    expect(r.status).toBe(403);
    expect(r.json.error?.message).toMatch(/^token [0-9a-f]{12} may not discard session [0-9a-f-]+: only the token that opened it or an admin may[^\n]*$/);
    expect((await close(token.teamB, id)).status).toBe(403);
    expect((await close(token.teamA, id, '?discard=1')).status).toBe(200);
    const id2 = await open(token.teamA, { tag: 'team-a/discard', mode: 'record' });
    expect((await close(token.admin, id2, '?discard=1')).status).toBe(200);
    const id3 = await open(token.teamA, { tag: 'team-a/discard', mode: 'record' });
    expect((await close(token.teamA2, id3)).status).toBe(200);
  });

  test('by default a session cannot make the service fetch from its loopback: by address, name or v4-mapped IPv6, nothing reaches the origin or the archive', async () => {
    const archive2 = path.join(serveDir.work, 'archive-defaults');
    const { service: strict, proxyPort: port, api: strictApi } = await startService(serveDir, { archive: archive2, address: '127.0.0.1', resolve: ['origin.test:127.0.0.1'] });
    try {
      const strictCall = (method: string, p: string, body?: unknown) => call(token.admin, method, new URL(p, strictApi).href, body);
      // A value the session redacts never reaches the service's log either, even when the request is refused.
      const planted = 'planted-query-secret-4711';
      const opened = await strictCall('POST', '/v1/sessions', { tag: 'team-a/ssrf', mode: 'record', redactQuery: ['secret'] });
      expect(opened.status).toBe(201);
      const before = (await origin.stats()).total;
      const targets = [
        ['127.0.0.1', `http://127.0.0.1:${origin.port}/counter?secret=${planted}`],
        ['127.0.0.1', `http://origin.test:${origin.port}/counter`],
        ['::ffff:7f00:1', `http://[::ffff:127.0.0.1]:${origin.port}/counter`],
      ];
      for (const [address, url] of targets) {
        const r = await rawExchange(net.connect(port, '127.0.0.1'), `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close\r\n\r\n`);
        expect({ url, status: r.status }).toEqual({ url, status: 502 });
        expect(r.headers).toMatch(/\r\nx-btrfly-upstream-error: denied\r\n/i);
        expect(r.body).toMatch(new RegExp(`^btrfly: upstream \\S+: address ${address.replace(/\./g, '\\.')} is denied \\(deny-upstream 127\\.0\\.0\\.0/8\\): [^\\n]*--allow-upstream ${address.replace(/\./g, '\\.')}/(32|128)\\n$`));
      }
      expect((await origin.stats()).total).toBe(before);
      // A request to the proxy itself (a loop) is logged with a secret query value redacted too.
      const loopToken = 'planted-loop-token-0815';
      const loop = await rawExchange(net.connect(port, '127.0.0.1'), `GET http://127.0.0.1:${port}/x?token=${loopToken} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
      expect(loop.status).toBe(508);
      const closed = await strictCall('DELETE', `/v1/sessions/${(opened.json.session as { id: string }).id}`);
      expect(closed.json).toMatchObject({ info: { stats: { recorded: 0, upstreamErrors: 3 } } });
      expect(strict.stdout + strict.stderr).toMatch(/upstream address denied, not recorded/);
      expect(strict.stdout + strict.stderr).toMatch(/"url":"http:\/\/127\.0\.0\.1:\d+\/counter\?secret=btrfly-hmac:[0-9a-f]{64}"/);
      expect(strict.stdout + strict.stderr).not.toContain(planted);
      expect(strict.stdout + strict.stderr).toMatch(new RegExp(`"url":"http://127\\.0\\.0\\.1:${port}/x\\?token=btrfly-redacted","msg":"refused a request addressed to the proxy itself \\(loop\\)"`));
      expect(strict.stdout + strict.stderr).not.toContain(loopToken);
    } finally {
      await strict.stop();
    }
    const sealed = await Archive.open(archive2);
    try {
      const commit = await sealed.resolveCommit('team-a/ssrf');
      expect((await sealed.readRecording('team-a/ssrf', commit)).manifest.entries).toEqual([]);
    } finally {
      await sealed.close();
    }
    // With --allow-upstream 127.0.0.0/8 (the service of this file) the same origin records.
    const id = await open(token.admin, { tag: 'team-a/allowed', mode: 'record' });
    expect((await fetchVia('/counter')).status).toBe(200);
    expect(await close(token.admin, id)).toMatchObject({ status: 200, json: { info: { stats: { recorded: 1 } } } });
  });

  test('malformed calls get their 4xx in one line: no JSON content type 400, not JSON 400, too large 413; the token is checked first', async () => {
    const json = { 'content-type': 'application/json' };
    const noType = await call(token.teamA, 'POST', '/v1/sessions', Buffer.from('{"tag":"team-a/app","mode":"record"}'));
    expect(noType).toMatchObject({ status: 400, json: { error: { code: 'USAGE', message: expect.stringMatching(/^the session request has no JSON body[^\n]*$/) } } });
    const notJson = await call(token.teamA, 'POST', '/v1/sessions', Buffer.from('{"tag":'), json);
    expect(notJson).toMatchObject({ status: 400, json: { error: { code: 'USAGE', message: expect.stringMatching(/^the request body is not JSON[^\n]*$/) } } });
    const huge = Buffer.from(JSON.stringify({ tag: 'team-a/app', mode: 'record', redactHeaders: ['x'.repeat(70_000)] }));
    const tooLarge = await call(token.teamA, 'POST', '/v1/sessions', huge, json);
    expect(tooLarge).toMatchObject({ status: 413, json: { error: { code: 'USAGE', message: 'the request body is larger than 64 KiB: send a smaller JSON object' } } });
    expect((await call('btf_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'POST', '/v1/sessions', huge, json)).status).toBe(401);
    expect(service.stderr).not.toMatch(/API request refused or failed.*(larger than|not JSON|no JSON body)/);
  });

  test('an --api-cert or --api-key that cannot be read or is not PEM: one line naming it, exit 1', async () => {
    const dir = tmpDir('btrfly-api-cert-');
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const missing = path.join(dir, 'missing.pem');
    const ports = ['--dns-port', '0', '--http-port', '0', '--https-port', '0', '--proxy-port', '0', '--api-port', '0'];
    const serve = (cert: string, key: string) => runCli(['serve', '--archive', path.join(dir, 'archive'), '--tokens', tokens, ...ports, '--api-cert', cert, '--api-key', key]);
    const unread = await serve(missing, garbage);
    expect(unread.code).toBe(1);
    expect(unread.stderr).toMatch(new RegExp(`^btrfly: cannot read the API's certificate ${missing}: [^\\n]*ENOENT[^\\n]*: give a PEM file, or leave out --api-cert and --api-key for a certificate from btrfly's CA\\n$`));
    const notPem = await serve(garbage, garbage);
    expect(notPem.code).toBe(1);
    expect(notPem.stderr).toMatch(new RegExp(`^btrfly: --api-cert ${garbage} and --api-key ${garbage} are not a PEM certificate and its private key \\([^\\n]*\\): give the pair in PEM, or leave both out for a certificate from btrfly's CA\\n$`));
  });

  test('login never echoes a credential typed into the URL: a password is refused (exit 2, nothing saved), a query is not printed', async () => {
    const config = tmpDir('btrfly-login-');
    const env = { BTRFLY_CONFIG_DIR: config };
    const { host } = new URL(api);
    const ca = serveDir.caPath;
    const withPassword = await runCli(['login', `https://ci:hunter2-secret@${host}`, '--token', token.teamA, '--ca', ca], { env });
    expect(withPassword).toMatchObject({ code: 2, stdout: '' });
    expect(withPassword.stderr).toBe(`btrfly: the service URL must not hold a user name or password (btrfly sends the token instead): use https://${host}\n`);
    expect(existsSync(path.join(config, 'login.json'))).toBe(false);
    const withQuery = await runCli(['login', `${api}/ui/?token=${token.teamA}`, '--token', token.teamA, '--ca', ca], { env });
    expect(withQuery).toMatchObject({ code: 0, stdout: '' });
    expect(withQuery.stderr).toBe(`btrfly: logged in to ${api} (record,playback on team-a/*); saved in ${path.join(config, 'login.json')}\n`);
  });

  test('login --ca that cannot be read or is not a certificate: one line saying so, exit 2', async () => {
    const dir = tmpDir('btrfly-login-ca-');
    const env = { BTRFLY_CONFIG_DIR: path.join(dir, 'config') };
    const missing = path.join(dir, 'missing.pem');
    const unread = await runCli(['login', api, '--token', token.teamA, '--ca', missing], { env });
    expect(unread).toMatchObject({ code: 2, stdout: '' });
    expect(unread.stderr).toMatch(new RegExp(`^btrfly: cannot read --ca ${missing}: [^\\n]*ENOENT[^\\n]*: give the service's CA certificate \\("btrfly ca export" on the service\\)\\n$`));
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const notPem = await runCli(['login', api, '--token', token.teamA, '--ca', garbage], { env });
    expect(notPem).toMatchObject({ code: 2, stderr: `btrfly: --ca ${garbage} is not a PEM certificate: give the service's CA certificate ("btrfly ca export" on the service)\n` });
    expect(existsSync(path.join(dir, 'config', 'login.json'))).toBe(false);
  });
});

describe('a record session whose start fails after the tag was locked', () => {
  test('releases the lock: the next record session of the tag opens', async () => {
    const archive = await Archive.open(path.join(tmpDir('btrfly-runtime-'), 'archive'), { create: true });
    const runtime = await Runtime.start({ archive, configDir: tmpDir('btrfly-config-') });
    try {
      // Past the API's checks (a caller of the runtime): a non-list makes the start throw once the lock is held.
      const bad = { tag: 't', mode: 'record', redactHeaders: 'x-secret' as unknown as string[] } as const;
      await expect(runtime.openSession(bad)).rejects.toThrow();
      const opened = await runtime.openSession({ tag: 't', mode: 'record' });
      await runtime.closeSession(opened.info.id, { discard: true });
    } finally {
      await runtime.close();
      await archive.close();
    }
  });
});

/** Writes `request` on `socket` and reads one HTTP/1.1 response (Content-Length bodies); the socket stays open. */
function rawExchange(socket: net.Socket, request: string): Promise<{ status: number; headers: string; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = buf.subarray(0, end).toString('latin1');
      const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      done();
      resolve({ status: Number(headers.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8'), socket });
    };
    const onEnd = () => (done(), reject(new Error(`connection closed before a whole response: ${JSON.stringify(buf.toString('latin1'))}`)));
    const done = () => {
      socket.off('data', onData);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.write(request);
  });
}
