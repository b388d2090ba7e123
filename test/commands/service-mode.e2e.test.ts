/**
 * Service mode as docs/contract.md describes it ("Three ways to run it", "Service mode"), with real components: `btrfly serve` in one
 * network namespace (DNS, proxy on 80/443 and 3128, the HTTPS API on 10.77.0.1, a stand-in
 * for the real resolvers and the origin beside it), three build hosts as other namespaces on
 * veth links, each running `btrfly login` / `start` / plain curl / `stop` inside a private
 * mount namespace with bind-mounted copies of resolv.conf and the trust store. Nothing on
 * the machine itself is touched.
 */
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  CLI_ENTRY,
  CLI_IN_SCRIPT as cli,
  cliEnv,
  createNetns,
  genBodySha256,
  hasNetns,
  createToken,
  tokenSecret,
  hostModeMissing,
  linkNetns,
  namespaceHost,
  ORIGIN_SERVER_SCRIPT,
  PROJECT_ROOT,
  runCli,
  runOk,
  snapshot,
  stopChild,
  testCa,
  tmpDir,
  type Netns,
} from '../helpers';
import { describeWhen } from '../helpers/when';

const missing = [...hostModeMissing(['dig']), hasNetns() ? '' : 'network namespaces'].filter(Boolean);
const maybe = describeWhen(missing);

/** The service's address, on the service namespace's loopback; each host routes to it over its veth link. */
const SERVICE = '10.77.0.1';
/** What the stand-in for the real resolvers answers for every name. */
const REAL_ANSWER = '192.0.2.77';
const SIZE = 300_000;

maybe('btrfly serve with three build hosts', () => {
  const work = tmpDir('btrfly-service-');
  const svcConfig = path.join(work, 'service-config');
  const tokens = path.join(work, 'tokens.json');
  const archive = path.join(work, 'archive');
  const sync = path.join(work, 'sync');
  let svc: Netns;
  const hosts: { ns: Netns; work: string; prelude: string[]; copies: string }[] = [];
  let service: ChildProcess;
  let serviceErr = '';
  let origin: ChildProcess;
  const token: Record<'a' | 'b' | 'c' | 'admin', string> = { a: '', b: '', c: '', admin: '' };

  const startOrigin = () => {
    const cert = testCa().issue(['origin.test']);
    origin = svc.spawn(process.execPath, [ORIGIN_SERVER_SCRIPT, '--host', '127.0.0.5', '--port', '443', '--cert', cert.certPath, '--key', cert.keyPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    return firstOutput(origin, /./);
  };
  /** Runs the host's script (after its prelude) in a private mount namespace inside its network namespace. */
  const onHost = (i: number, lines: string[]) =>
    hosts[i].ns.exec('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', [...hosts[i].prelude, ...lines].join('\n')], { env: cliEnv(), timeoutMs: 90_000 });
  const barrier = (me: string, other: string) => [`touch ${sync}/${me}`, `for i in $(seq 300); do [ -f ${sync}/${other} ] && break; sleep 0.1; done`];
  const login = (t: string) => `${cli} login https://${SERVICE}:8443 --token ${t} --ca ${svcConfig}/ca.pem`;

  beforeAll(async () => {
    await fs.mkdir(sync);
    svc = await createNetns();
    await runOk('ip', ['-n', svc.name, 'addr', 'add', `${SERVICE}/32`, 'dev', 'lo']);
    for (let i = 0; i < 3; i++) {
      const ns = await createNetns();
      const link = await linkNetns(svc, ns);
      await runOk('ip', ['-n', ns.name, 'route', 'add', `${SERVICE}/32`, 'via', link.a.address]);
      const hostWork = path.join(work, `host${i + 1}`);
      await fs.mkdir(hostWork);
      const { prelude, copies } = await namespaceHost(hostWork, '# the host before btrfly\nnameserver 192.0.2.53\noptions timeout:1\n');
      hosts.push({ ns, work: hostWork, prelude, copies });
    }
    const create = (scope: string, tags: string) => createToken(tokens, scope, tags);
    token.a = await create('record,playback', 'team-a/*');
    token.b = await create('record,playback', 'team-b/*');
    token.c = await create('playback', 'team-a/*');
    token.admin = await create('admin', '*');
    const resolver = svc.spawn(process.execPath, [path.join(PROJECT_ROOT, 'test', 'fixtures', 'fake-resolver.js'), '--host', '127.0.0.53', '--port', '53', '--answer', REAL_ANSWER], { stdio: ['ignore', 'pipe', 'pipe'] });
    await firstOutput(resolver, /listening/);
    await startOrigin();
    service = svc.spawn(
      process.execPath,
      [CLI_ENTRY, 'serve', '--archive', archive, '--address', SERVICE, '--tokens', tokens, '--upstream-dns', '127.0.0.53', '--resolve', 'origin.test:127.0.0.5', '--upstream-ca', testCa().caPath, '--allow-upstream', '127.0.0.5/32'],
      { env: cliEnv({ BTRFLY_CONFIG_DIR: svcConfig }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    service.stderr!.setEncoding('utf8').on('data', (s: string) => (serviceErr += s));
    await firstOutput(service, /btrfly: serving DNS on 10\.77\.0\.1:53/);
    expect((await fs.stat(tokens)).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(tokens, 'utf8')).not.toContain(tokenSecret(token.a));
  }, 60_000);

  test('two hosts record different tags at the same time, each through its own session', async () => {
    const record = (i: number, t: string, tag: string, seed: number, me: string, other: string) =>
      onHost(i, [
        login(t),
        `${cli} start record --tag=${tag}`,
        `grep -q '^nameserver ${SERVICE}' /etc/resolv.conf && echo "resolver points at the service"`,
        `dig +short origin.test | sed 's/^/session dns /'`,
        ...barrier(`${me}-started`, `${other}-started`),
        `curl -sSf -o ${hosts[i].work}/rec.bin "https://origin.test/gen/${SIZE}?seed=${seed}"`,
        `curl -sSf -o ${hosts[i].work}/rec.txt "https://origin.test/counter"`,
        `${cli} status`,
        ...barrier(`${me}-fetched`, `${other}-fetched`),
        `${cli} stop record`,
      ]);
    const [h1, h2] = await Promise.all([record(0, token.a, 'team-a/one', 1, 'h1', 'h2'), record(1, token.b, 'team-b/two', 2, 'h2', 'h1')]);
    for (const [h, tag] of [[h1, 'team-a/one'], [h2, 'team-b/two']] as const) {
      const out = h.stdout + h.stderr;
      expect(out).toMatch(/logged in to https:\/\/10\.77\.0\.1:8443/);
      expect(out).toContain('resolver points at the service');
      expect(out).toContain(`session dns ${SERVICE}`);
      expect(out).toMatch(new RegExp(`record +${tag} .* 2 requests`));
      expect(out).toMatch(new RegExp(`recorded tag "${tag}" \\(recording [0-9a-f]{12}\\): 2 requests, 2 entries`));
      expect(h.code).toBe(0);
    }
    // Both hosts got the origin's answers, and each tag holds only its own host's requests.
    expect(await sha(path.join(hosts[0].work, 'rec.bin'))).toBe(await genBodySha256(SIZE, 1));
    expect(await sha(path.join(hosts[1].work, 'rec.bin'))).toBe(await genBodySha256(SIZE, 2));
    const urls = async (tag: string) => (await runOk('git', ['--git-dir', archive, 'show', `refs/heads/${tag}:manifest.json`])).stdout.match(/"url": "[^"]+"/g);
    expect(await urls('team-a/one')).toEqual(['"url": "https://origin.test/counter"', `"url": "https://origin.test/gen/${SIZE}?seed=1"`]);
    expect(await urls('team-b/two')).toEqual(['"url": "https://origin.test/counter"', `"url": "https://origin.test/gen/${SIZE}?seed=2"`]);
    // The host files came back byte for byte.
    for (const h of hosts.slice(0, 2)) expect((await fs.readFile(path.join(h.copies, 'resolv.conf'), 'utf8'))).toMatch(/^# the host before btrfly/);
  }, 180_000);

  test('with the origin gone, two hosts play back their tags at once; a wrong-scope token and a host in no session are refused', async () => {
    await stopChild(origin);
    const before = await snapshot(hosts[0].copies);
    const play = (i: number, t: string, tag: string, seed: number, otherSeed: number, me: string, other: string) =>
      onHost(i, [
        login(t),
        `${cli} start playback --tag=${tag}`,
        ...barrier(`${me}-playing`, `${other}-playing`),
        `curl -sSf -o ${hosts[i].work}/play.bin "https://origin.test/gen/${SIZE}?seed=${seed}"`,
        `curl -sSf -o ${hosts[i].work}/play.txt "https://origin.test/counter"`,
        // The other host's request is in the other tag only: a miss here.
        `echo "cross status $(curl -s -o /dev/null -w '%{http_code}' "https://origin.test/gen/${SIZE}?seed=${otherSeed}")"`,
        ...barrier(`${me}-played`, `${other}-played`),
        `${cli} stop playback && echo "stop exit 0" || echo "stop exit $?"`,
      ]);
    const refused = onHost(0, [
      // Host 1 is still logged in with team-a's token.
      `${cli} start record --tag=team-b/x 2> ${hosts[0].work}/refused.txt && echo "start exit 0" || echo "start exit $?"`,
      `grep '^nameserver' /etc/resolv.conf | sed 's/^/resolver /'`,
      `dig +short @${SERVICE} origin.test | sed 's/^/no-session dns /'`,
      `echo "transparent http $(curl -s -o /dev/null -w '%{http_code}' --resolve origin.test:80:${SERVICE} http://origin.test/counter)"`,
      `echo "transparent https $(curl -sk -o /dev/null -w '%{http_code}' --resolve origin.test:443:${SERVICE} https://origin.test/counter)"`,
      `echo "explicit proxy $(curl -s -o /dev/null -w '%{http_code}' -x http://${SERVICE}:3128 http://origin.test/counter)"`,
    ]);
    const [h3, h2, h1] = await Promise.all([play(2, token.c, 'team-a/one', 1, 2, 'h3', 'h2b'), play(1, token.b, 'team-b/two', 2, 1, 'h2b', 'h3'), refused]);
    for (const h of [h3, h2]) {
      const out = h.stdout + h.stderr;
      expect(out).toContain('cross status 404');
      expect(out).toMatch(/3 requests, .* 2 hits, 1 misses/);
      expect(out).toContain('stop exit 3');
    }
    expect(await sha(path.join(hosts[2].work, 'play.bin'))).toBe(await genBodySha256(SIZE, 1));
    expect(await sha(path.join(hosts[1].work, 'play.bin'))).toBe(await genBodySha256(SIZE, 2));
    expect(await fs.readFile(path.join(hosts[2].work, 'play.txt'), 'utf8')).toBe(await fs.readFile(path.join(hosts[0].work, 'rec.txt'), 'utf8'));
    expect(await fs.readFile(path.join(hosts[1].work, 'play.txt'), 'utf8')).toBe(await fs.readFile(path.join(hosts[1].work, 'rec.txt'), 'utf8'));

    const out1 = h1.stdout + h1.stderr;
    const err = await fs.readFile(path.join(hosts[0].work, 'refused.txt'), 'utf8');
    expect(err).toMatch(/^btrfly: token [0-9a-f]{12} may not touch tag "team-b\/x" \(its tags: team-a\/\*\)[^\n]*\n$/);
    expect(out1).toContain('start exit 1');
    expect(out1).toContain('resolver nameserver 192.0.2.53');
    expect(out1).toContain(`no-session dns ${REAL_ANSWER}`);
    expect(out1).toContain('transparent http 403');
    expect(out1).toContain('transparent https 403');
    expect(out1).toContain('explicit proxy 407');
    expect(await snapshot(hosts[0].copies)).toEqual(before);
  }, 180_000);

  test('/metrics in the Prometheus text format, behind a token', async () => {
    const scrape = (...auth: string[]) => svc.exec('curl', ['-s', '-w', '\nstatus %{http_code}', '--cacert', `${svcConfig}/ca.pem`, ...auth, `https://${SERVICE}:8443/metrics`]);
    expect((await scrape()).stdout).toMatch(/"code":"UNAUTHORIZED"[\s\S]*status 401$/);
    const text = (await scrape('-H', `Authorization: Bearer ${token.admin}`)).stdout;
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(text).toMatch(/^# TYPE btrfly_requests_total counter$/m);
    expect(value('btrfly_requests_total{mode="record",outcome="recorded"}')).toBe(4);
    expect(value('btrfly_requests_total{mode="playback",outcome="hit"}')).toBe(4);
    expect(value('btrfly_requests_total{mode="playback",outcome="miss"}')).toBe(2);
    expect(value('btrfly_requests_total{mode="none",outcome="refused"}')).toBe(3);
    expect(value('btrfly_playback_misses_total')).toBe(2);
    expect(value('btrfly_response_bytes_total{mode="record"}')).toBeGreaterThanOrEqual(2 * SIZE);
    expect(value('btrfly_response_bytes_total{mode="playback"}')).toBeGreaterThanOrEqual(2 * SIZE);
    expect(value('btrfly_active_sessions{mode="record"}')).toBe(0);
    expect(value('btrfly_request_duration_seconds_count{mode="playback"}')).toBe(6);
    expect(text).toMatch(/^btrfly_request_duration_seconds_bucket\{le="\+Inf",mode="record"\} 4$/m);
  }, 30_000);

  test('stop restores the host when the service refuses its revoked token, and when login.json is damaged', async () => {
    const before = await snapshot(hosts[2].copies);
    const revokable = await createToken(tokens, 'record,playback', 'team-a/*');
    const started = await onHost(2, [login(revokable), `${cli} start record --tag=team-a/revoked`]);
    expect(started.code).toBe(0);
    expect(await runCli(['token', 'revoke', revokable.split('_')[1], '--tokens', tokens])).toMatchObject({ code: 0 });
    const stopped = await onHost(2, [`${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`, `grep '^nameserver' /etc/resolv.conf | sed 's/^/resolver /'`]);
    expect(stopped.stderr).toMatch(/^btrfly: the btrfly service refused the token \(unknown, revoked or mistyped\)[^\n]*; the host is restored, and the service ended the session itself \(it ends a revoked token's sessions, sealing what they recorded\)\n/m);
    expect(stopped.stdout).toContain('stop exit 0');
    expect(stopped.stdout).toContain('resolver nameserver 192.0.2.53');
    expect(await snapshot(hosts[2].copies)).toEqual(before);

    // A login file that no longer parses: the host is restored all the same.
    const damaged = await onHost(2, [
      login(token.a),
      `${cli} start record --tag=team-a/damaged-login`,
      `echo '{not json' > ${hosts[2].work}/config/login.json`,
      `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
      `grep '^nameserver' /etc/resolv.conf | sed 's/^/resolver /'`,
    ]);
    expect(damaged.stderr).toMatch(/^btrfly: cannot read [^\n]*login\.json: [^\n]*; the host is restored, the session on https:\/\/10\.77\.0\.1:8443 may still be open\n/m);
    expect(damaged.stdout).toContain('stop exit 0');
    expect(damaged.stdout).toContain('resolver nameserver 192.0.2.53');
    expect(await snapshot(hosts[2].copies)).toEqual(before);
  }, 120_000);

  test('SIGTERM seals a recording still open on the service', async () => {
    await startOrigin();
    const h = await onHost(0, [`${cli} start record --tag=team-a/three`, 'curl -sSf -o /dev/null "https://origin.test/counter"']);
    expect(h.code).toBe(0);
    // Sealing takes under a second here alone; CI's three workers once kept it past 20 s (then SIGKILL).
    await stopChild(service, 45_000);
    // With what the service said last, so that a shutdown that hangs tells where.
    expect({ exitCode: service.exitCode, said: service.exitCode === 0 ? '' : serviceErr.slice(-3000) }).toEqual({ exitCode: 0, said: '' });
    expect(serviceErr).toContain(`btrfly: serving DNS on 10.77.0.1:53, the proxy on 10.77.0.1 (HTTP 80, HTTPS 443, proxy 3128), the API and the web UI on https://10.77.0.1:8443 (tokens: ${tokens})\n`);
    const manifest = (await runOk('git', ['--git-dir', archive, 'show', 'refs/heads/team-a/three:manifest.json'])).stdout;
    expect(manifest).toContain('"url": "https://origin.test/counter"');
    await runOk('git', ['--git-dir', archive, 'fsck', '--strict']);
  }, 90_000);
});

function sha(file: string): Promise<string> {
  return fs.readFile(file).then((b) => createHash('sha256').update(b).digest('hex'));
}

/** Resolves when the child's output matches `pattern`; rejects if it exits first. */
function firstOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${text}`)), timeoutMs);
    const on = (s: Buffer) => {
      text += s.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before printing ${pattern}:\n${text}`));
    });
  });
}
