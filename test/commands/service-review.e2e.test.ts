/**
 * What a hostile or mistaken user of a real `btrfly serve` on loopback meets: DNS for a host in
 * no session, and `btrfly login` against the wrong certificate or a port that does not speak TLS.
 */
import { writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { dig, startFakeUpstream, UPSTREAM_A, type FakeUpstream } from '../engine/dns-fixtures';
import { API_CONNECTIONS, PROXY_CONNECTIONS } from '../../src/engine/service/service';
import { describeWhen } from '../helpers/when';
import { createToken, runCli, serviceDir, startService, testCa, type StartedService } from '../helpers';

/** An address of this machine other than loopback, where a service of the host may listen. */
const OWN_ADDRESS = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i && !i.internal && i.family === 'IPv4')?.address;

describe('btrfly serve attacked on loopback', () => {
  const dir = serviceDir('btrfly-service-review-');
  let upstream: FakeUpstream;
  let served: StartedService;
  let dnsPort = 0;
  let token = '';

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    // The service host's own resolver file names the fake upstream; serve is given no --upstream-dns.
    const resolvConf = path.join(dir.work, 'resolv.conf');
    writeFileSync(resolvConf, `nameserver 127.0.0.1:${upstream.port}\n`);
    token = await createToken(dir.tokens, 'record,playback', 'team-a/*');
    served = await startService(dir, {}, [], { BTRFLY_RESOLV_CONF: resolvConf, BTRFLY_SYSTEMD_RESOLV_CONF: path.join(dir.work, 'none') });
    dnsPort = Number(/serving DNS on 127\.0\.0\.1:(\d+)/.exec(served.service.stderr)![1]);
  });

  /** One GET to the API, trusting the service's CA; with `tok` as bearer token when given. */
  const get = (urlPath: string, tok?: string) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const headers = tok ? { authorization: `Bearer ${tok}` } : undefined;
      https
        .get(new URL(urlPath, served.api), { ca: served.caPem, headers }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (s: string) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        })
        .once('error', reject);
    });

  test('the UI may not be framed by another site (also for browsers without frame-ancestors); API answers are never cached', async () => {
    const page = await get('/ui/');
    expect(page.status).toBe(200);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    for (const p of ['/v1/status', '/v1/tags', '/metrics']) {
      const r = await get(p, token);
      expect([p, r.status, r.headers['cache-control']]).toEqual([p, 200, 'no-store']);
    }
  });

  test('a tag not found: the caller is told where tags are listed, not the archive\'s directory on the service host', async () => {
    for (const p of ['/v1/recording?spec=team-a/none', '/v1/log?tag=team-a/none', '/v1/diff?from=team-a/none&to=team-a/other']) {
      const r = await get(p, token);
      expect([p, r.status, JSON.parse(r.body)]).toEqual([
        p,
        404,
        { error: { code: 'TAG_NOT_FOUND', message: 'tag "team-a/none" not found on the service: GET /v1/tags (the web UI\'s Tags) lists the tags this token may read', tag: 'team-a/none' } },
      ]);
      expect(r.body).not.toContain(dir.work);
    }
  });

  test('without --upstream-dns a host in no session gets the real answer from the service host\'s resolvers, not SERVFAIL', async () => {
    const r = await dig({ port: dnsPort }, 'example.test', 'A', { from: '127.0.0.2' });
    expect(r.status).toBe('NOERROR');
    expect(r.answers).toEqual([`A ${UPSTREAM_A}`]);
    expect(upstream.queries).toContain('example.test A');
  });

  test('login without the service\'s CA: one line saying to give --ca, no Node hint', async () => {
    const r = await runCli(['login', served.api, '--token', token]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^btrfly: the btrfly service at https:\/\/127\.0\.0\.1:\d+ has a certificate this host does not trust \(.+\): give "btrfly login" the service's CA with --ca FILE \("btrfly ca export" on the service\)/);
    expect(r.stderr).not.toContain('use-system-ca');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('login --ca of another CA: one line saying it is not the CA that signed the service\'s certificate', async () => {
    const other = path.join(dir.work, 'other-ca.pem');
    writeFileSync(other, testCa().certPem);
    const r = await runCli(['login', served.api, '--token', token, '--ca', other]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not trust \(.+\): the --ca given to "btrfly login" is not the CA that signed it/);
  });

  test('login to a port that does not speak TLS (the proxy): one line saying so and where the API is', async () => {
    const r = await runCli(['login', `https://127.0.0.1:${served.proxyPort}`, '--token', token, '--ca', dir.caPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^btrfly: the btrfly service at https:\/\/127\.0\.0\.1:\d+ did not answer in TLS \(EPROTO\): give the URL of the service's HTTPS API/);
  });

  test('a hand-damaged token store: one line naming the record and what is wrong, not a TypeError; no unknown scope is honoured', async () => {
    const store = path.join(dir.work, 'damaged-tokens.json');
    const good = { id: '0123456789ab', scopes: ['record'], tags: ['team-a/*'], hash: 'a'.repeat(64), created: '2026-01-01T00:00:00.000Z' };
    for (const [bad, why] of [
      [{ id: 'x' }, 'its id is not 12 hex digits'],
      [{ ...good, scopes: ['admin', 'root'] }, 'token 0123456789ab: its scopes are not a list of record, playback, admin'],
      [{ ...good, tags: undefined }, 'token 0123456789ab: its tags are not a list of patterns'],
    ] as const) {
      writeFileSync(store, JSON.stringify({ btrflyTokens: 1, tokens: [good, bad] }), { mode: 0o600 });
      const r = await runCli(['token', 'list', '--tokens', store]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`btrfly: token 2 of ${store} is damaged (${why}): restore the file from a backup, or mend or delete that record by hand\n`);
    }
  });

  /**
   * `count` silent TCP connections from 127.0.0.2 to `port`; resolves once the service has closed
   * `closing` of them, with the sockets and a counter of those it closed.
   */
  const silentConnections = (port: number, count: number, closing: number) =>
    new Promise<{ sockets: net.Socket[]; closed: () => number }>((resolve) => {
      let closed = 0;
      const sockets = Array.from({ length: count }, () => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
        s.on('error', () => undefined);
        s.once('close', () => {
          if (++closed === closing) resolve({ sockets, closed: () => closed });
        });
        return s;
      });
    });

  test.each([
    ['API', () => new URL(served.api).port, API_CONNECTIONS.perAddress],
    ['proxy', () => String(served.proxyPort), PROXY_CONNECTIONS.perAddress],
  ])('one client holding silent connections to the %s cannot take more than its share; other hosts are still served', async (what, port, cap) => {
    const { sockets, closed } = await silentConnections(Number(port()), cap + 5, 5);
    try {
      expect((await get('/v1/status', token)).status).toBe(200);
      expect(closed()).toBe(5);
      expect(served.service.stdout).toContain(`"client":"127.0.0.2","limit":${cap},"msg":"${what}: refused connections from a client past its limit of open connections"`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 15_000);

  describeWhen(OWN_ADDRESS ? undefined : 'a network interface with an IPv4 address other than loopback')('the service host\'s own addresses', () => {
    test('a host in a session cannot make the service fetch from another address of the service host (a management interface)', async () => {
      // No server is started on that address (tests serve only on loopback or in namespaces they
      // make): the port is one nothing listens on, so a fetch the policy let through would fail to
      // connect, with another error than `denied`.
      const closed = net.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const target = `${OWN_ADDRESS}:${port}`;
      const post = await new Promise<{ session: { id: string } }>((resolve, reject) => {
        const req = https.request(new URL('/v1/sessions', served.api), { method: 'POST', ca: served.caPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(body) as { session: { id: string } }) : reject(new Error(body))));
        });
        req.once('error', reject).end(JSON.stringify({ tag: 'team-a/inside', mode: 'record' }));
      });
      const answer = await new Promise<{ status: number; error: string | string[] | undefined }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: served.proxyPort, path: `http://${target}/admin`, headers: { host: target } }, (res) => {
            res.resume().on('end', () => resolve({ status: res.statusCode!, error: res.headers['x-btrfly-upstream-error'] }));
          })
          .once('error', reject);
      });
      expect(answer).toEqual({ status: 502, error: 'denied' });
      await new Promise<void>((resolve, reject) => {
        https
          .request(new URL(`/v1/sessions/${post.session.id}?discard=1`, served.api), { method: 'DELETE', ca: served.caPem, headers: { authorization: `Bearer ${token}` } }, (res) => res.resume().on('end', resolve))
          .once('error', reject)
          .end();
      });
    });
  });

  test('--address that hosts cannot be told (a wildcard, a name) or that this host does not have: exit 2, one line', async () => {
    const serve = (address: string) =>
      runCli(['serve', '--address', address, '--archive', path.join(dir.work, 'unused'), '--tokens', dir.tokens, ...['--dns-port', '--http-port', '--https-port', '--proxy-port', '--api-port'].flatMap((f) => [f, '0'])]);
    for (const a of ['0.0.0.0', '::', 'localhost']) {
      expect(await serve(a)).toMatchObject({ code: 2, stderr: `btrfly: --address ${a} is not an address build hosts can be told: DNS answers it for every name, so give this host's IP address on their network (e.g. --address 10.0.0.5); --api-address may be 0.0.0.0\n` });
    }
    const r = await serve('192.0.2.254');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^btrfly: --address 192\.0\.2\.254 is not an address of this host \(it has 127\.0\.0\.1, [^\n]*\): give one of them\n$/);
  });

  test('with an IPv6 --address a host in a session is told it in AAAA answers (A answers were dropped as invalid)', async () => {
    const v6 = await startService(serviceDir('btrfly-service-v6-'), { address: '::1', tokens: dir.tokens }, [], { BTRFLY_RESOLV_CONF: path.join(dir.work, 'none') });
    const port = Number(/serving DNS on ::1:(\d+)/.exec(v6.service.stderr)![1]);
    const opened = await new Promise<number>((resolve, reject) => {
      https
        .request(new URL('/v1/sessions', v6.api), { method: 'POST', ca: v6.caPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => res.resume().on('end', () => resolve(res.statusCode!)))
        .once('error', reject)
        .end(JSON.stringify({ tag: 'team-a/v6', mode: 'record' }));
    });
    expect(opened).toBe(201);
    expect((await dig({ port, host: '::1' }, 'example.test', 'AAAA')).answers).toEqual(['AAAA ::1']);
    expect(await dig({ port, host: '::1' }, 'example.test', 'A')).toMatchObject({ status: 'NOERROR', answers: [] });
    await v6.service.stop();
  });
});
