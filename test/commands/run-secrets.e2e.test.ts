/**
 * Nothing secret reaches the archive (docs/contract.md, "Secrets"): not the command line (commit messages
 * name the program only), not a URL's `user:password@`, not a credential header, not a query
 * value `--redact-query` hides. Secrets are planted in argv, headers, basic auth, userinfo and
 * a redacted query of a real curl; then every git object (decompressed by `git cat-file
 * --batch-all-objects --batch`, loose and packed after `git gc`) and every file under the
 * archive is searched for each of them, in clear and in base64. `btrfly import` of a HAR that
 * holds the same kinds of secret (userinfo in a URL, credential headers the answer varies on, a
 * query the tag redacts) stores none of them either, and its entries play back.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli, startOrigin, tmpDir } from '../helpers';

const SECRETS = ['SECRET1-bearer-7f3a', 'SECRET2-basic-91c2', 'SECRET3-query-4be8', 'SECRET4-userinfo-c0d5', 'SECRET5-header-2a61', 'SECRET6-cookie-88e0'];

let server: Server;
let port: number;
beforeAll(async () => {
  // Answers vary on every credential header, so each would be stored if btrfly stored them.
  server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', Vary: 'Authorization, X-Api-Key, Cookie' });
    res.end(`ok ${req.url!.split('?')[0]}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Every needle found in any git object of `archive` or any file under it, before and after `git gc` packs them. */
function secretsIn(archive: string, secrets: readonly string[] = SECRETS): string[] {
  const pairs = [`user:${secrets[1]}`, `user:${secrets[3]}`];
  const all = [...secrets.map((s) => ({ what: s, bytes: Buffer.from(s) })), ...pairs.map((p) => ({ what: `base64(${p})`, bytes: Buffer.from(Buffer.from(p).toString('base64')) }))];
  const search = (where: string, haystack: Buffer): string[] => all.filter((n) => haystack.includes(n.bytes)).map((n) => `${n.what} in ${where}`);
  const found: string[] = [];
  const scan = (): void => {
    const objects = execFileSync('git', ['--git-dir', archive, 'cat-file', '--batch-all-objects', '--batch'], { maxBuffer: 1 << 28 });
    expect(objects.length).toBeGreaterThan(0);
    found.push(...search('a git object', objects));
    for (const f of filesUnder(archive)) found.push(...search(f, readFileSync(f)));
  };
  scan();
  execFileSync('git', ['--git-dir', archive, 'gc', '--quiet', '--prune=now']);
  expect(filesUnder(join(archive, 'objects', 'pack')).some((f) => f.endsWith('.pack'))).toBe(true);
  scan();
  return found;
}

test('secrets in argv, headers, basic auth, userinfo and a redacted query are nowhere in the archive', async () => {
  const archive = join(tmpDir(), 'archive');
  const base = `http://secret.test:${port}`;
  const script = [
    `curl -sf -o /dev/null -H 'Authorization: Bearer ${SECRETS[0]}' ${base}/a`,
    `curl -sf -o /dev/null -u user:${SECRETS[1]} ${base}/b`,
    `curl -sf -o /dev/null '${base}/c?token=${SECRETS[2]}&page=1'`,
    `curl -sf -o /dev/null http://user:${SECRETS[3]}@secret.test:${port}/d`,
    `curl -sf -o /dev/null -H 'X-Api-Key: ${SECRETS[4]}' ${base}/e`,
    `curl -sf -o /dev/null -H 'Cookie: session=${SECRETS[5]}' ${base}/f`,
  ].join(' && ');
  const flags = ['--archive', archive, '--resolve', `secret.test:127.0.0.1`, '--redact-query=token', '--redact=X-Api-Key'];
  const rec = await runCli(['run', '--record', '--tag=secrets', ...flags, '--', 'sh', '-c', script]);
  expect(rec.stderr).toMatch(/recorded tag "secrets" \(recording [0-9a-f]{12}\): 6 requests, 6 entries/);
  expect(rec.code).toBe(0);

  // The same build plays back: the redacted values still match (as keyed hashes).
  const play = await runCli(['run', '--playback', '--tag=secrets', '--archive', archive, '--', 'sh', '-c', script]);
  expect(play.stderr).toMatch(/6 hits, 0 misses/);
  expect(play.code).toBe(0);

  const log = await runCli(['log', 'secrets', '--archive', archive, '--json']);
  expect(JSON.parse(log.stdout)[0].summary).toBe('record secrets: 6 entries from sh');
  const show = await runCli(['show', 'secrets', '--archive', archive, '--json']);
  expect(show.stdout).toContain(`http://secret.test:${port}/d`);

  expect(secretsIn(archive)).toEqual([]);
});

test('import of a HAR with userinfo, credential headers and a redacted query stores none of them, and plays back', async () => {
  const archive = join(tmpDir(), 'archive');
  const s = SECRETS.map((x) => x.replace('SECRET', 'HARSECRET'));
  const base = `http://secret.test:${port}`;
  // The tag redacts ?token= (from its first recording); the import appends to it.
  const rec = await runCli(['run', '--record', '--tag=har', '--archive', archive, '--resolve', 'secret.test:127.0.0.1', '--redact-query=token', '--', 'curl', '-sf', '-o', '/dev/null', `${base}/first`]);
  expect(rec.code).toBe(0);
  const varying = [{ name: 'Vary', value: 'Authorization, X-Api-Key, Cookie' }, { name: 'Content-Type', value: 'text/plain' }];
  const entry = (url: string, headers: Array<{ name: string; value: string }>, text: string) => ({
    startedDateTime: '2025-01-01T00:00:00.000Z',
    request: { method: 'GET', url, httpVersion: 'HTTP/1.1', headers },
    response: { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: varying, content: { size: text.length, mimeType: 'text/plain', text } },
  });
  const basic = (pw: string) => `Basic ${Buffer.from(`user:${pw}`).toString('base64')}`;
  const har = {
    log: {
      version: '1.2',
      creator: { name: 'test', version: '1' },
      entries: [
        entry(`${base}/a`, [{ name: 'Authorization', value: `Bearer ${s[0]}` }], 'a\n'),
        entry(`${base}/b`, [{ name: 'Authorization', value: basic(s[1]) }], 'b\n'),
        entry(`${base}/c?token=${s[2]}&page=1`, [], 'c\n'),
        entry(`http://user:${s[3]}@secret.test:${port}/d?token=${s[2]}`, [{ name: 'Authorization', value: basic(s[3]) }], 'd\n'),
        entry(`${base}/e`, [{ name: 'X-Api-Key', value: s[4] }], 'e\n'),
        entry(`${base}/f`, [{ name: 'Cookie', value: `session=${s[5]}` }], 'f\n'),
      ],
    },
  };
  const file = join(tmpDir(), 'secrets.har');
  writeFileSync(file, JSON.stringify(har));
  const imp = await runCli(['import', file, '--tag=har', '--append', '--redact=X-Api-Key', '--archive', archive]);
  expect(imp.stderr).toBe('');
  expect(imp.stdout).toMatch(/^imported 6 entries into tag har /);
  expect(imp.code).toBe(0);
  const show = await runCli(['show', 'har', '--archive', archive, '--json']);
  expect(show.stdout).toContain(`http://secret.test:${port}/d?token=btrfly-hmac:`);

  // The imported answers play back to a client sending the same secrets (as curl sends userinfo: Basic auth).
  const play = await runCli(['run', '--playback', '--tag=har', '--archive', archive, '--', 'curl', '-sf', `http://user:${s[3]}@secret.test:${port}/d?token=${s[2]}`]);
  expect(play.stdout).toBe('d\n');
  expect(play.code).toBe(0);

  expect(secretsIn(archive, s)).toEqual([]);
});

test('tokens in query parameters of the default secret list are nowhere in the archive, in any case, and play back offline', async () => {
  const origin = await startOrigin({ https: true });
  const archive = join(tmpDir(), 'archive');
  // One token a name, spelled as services spell them (the list matches in any case).
  const planted: Array<[string, string]> = [
    ['access_token', 'TOK01-oauth-5d1e'],
    ['Token', 'TOK02-generic-a3f0'],
    ['API_KEY', 'TOK03-apikey-77b2'],
    ['apiKey', 'TOK04-apikey-0c9d'],
    ['key', 'TOK05-google-e41a'],
    ['password', 'TOK06-password-19c3'],
    ['client_secret', 'TOK07-oauth-b8e5'],
    ['sig', 'TOK08-azure-sas-6f02'],
    ['X-Amz-Signature', 'TOK09-aws-sig-d2c7'],
    ['X-Amz-Credential', 'TOK10-AKIAEXAMPLE-4e1b'],
    ['X-Amz-Security-Token', 'TOK11-aws-session-9a3c'],
    ['X-Goog-Signature', 'TOK12-gcs-sig-2b8f'],
    ['x-goog-credential', 'TOK13-gcs-cred-c6d4'],
    ['private_token', 'TOK14-gitlab-70ea'],
    ['jwt', 'TOK15-github-asset-3f9b'],
    ['Auth', 'TOK16-auth-85d0'],
  ];
  const kept = 'KEPT-pwd-not-a-secret-1a2b';
  const urls = planted.map(([name, token], i) => origin.urlFor(`/gen/${100 + i}?seed=${i}&${name}=${token}&page=2`, 'origin.test'));
  urls.push(origin.urlFor(`/gen/99?pwd=${kept}`, 'origin.test'));
  // Named with --redact-query: a keyed hash, so another host's key does not match it.
  const hashedToken = 'TOK18-session-0d4e';
  const hashedUrl = origin.urlFor(`/gen/98?session=${hashedToken}`, 'origin.test');
  urls.push(hashedUrl);
  // A redirect to a signed URL (as release downloads are): the token is in its Location only (the
  // redirect's own URL carries the target percent-encoded, and its body is empty for this Accept),
  // and in the URL curl then fetches. A token in a body is stored as received (docs/decisions.md).
  const signedToken = 'TOK17-redirect-sig-5e6f';
  const signed = origin.urlFor(`/gen/321?seed=r&X-Amz-Signature=${signedToken}&X-Amz-Date=20261207T000000Z`, 'origin.test');
  const redirect = origin.urlFor(`/redirect?status=302&to=${[...Buffer.from(signed)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`, 'origin.test');
  const script = [...urls.map((u) => `curl -sSf -o /dev/null '${u}'`), `curl -sSfL -H 'Accept: application/x-test' -o /dev/null '${redirect}'`].join(' && ');
  const requests = urls.length + 2;
  const flags = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const rec = await runCli(['run', '--record', '--tag=tokens', ...flags, '--upstream-ca', origin.caPath!, '--keep-query', 'pwd', '--redact-query', 'session', '--', 'sh', '-c', script]);
  expect(rec.stderr).toMatch(new RegExp(`recorded tag "tokens" \\(recording [0-9a-f]{12}\\): ${requests} requests, ${requests} entries`));
  expect(rec.code).toBe(0);

  const show = JSON.parse((await runCli(['show', 'tokens', '--archive', archive, '--json'])).stdout);
  expect(show.redact.queryAnyCase).toBe(true);
  expect(show.redact.secretQuery).toEqual(expect.arrayContaining(['access_token', 'token', 'api_key', 'apikey', 'key', 'x-amz-signature']));
  expect(show.redact.secretQuery).not.toContain('pwd');
  expect(show.redact.query).toEqual(['session']);
  // --keep-query: stored as sent; the other parameters of each URL too.
  const stored: string[] = show.entries.map((e: { request: { url: string } }) => e.request.url);
  expect(stored).toContain(origin.urlFor(`/gen/99?pwd=${kept}`, 'origin.test'));
  for (const [name] of planted) expect(`${name}: ${stored.some((u) => u.includes(`&${name}=btrfly-redacted&`) && u.endsWith('&page=2'))}`).toBe(`${name}: true`);
  expect(stored).toContainEqual(expect.stringMatching(/\/gen\/98\?session=btrfly-hmac:[0-9a-f]{64}$/));
  const moved = show.entries.find((e: { response: { status: number } }) => e.response.status === 302);
  expect(moved.response.headers).toContainEqual({ name: 'Location', value: expect.stringMatching(/^https:\/\/origin\.test:\d+\/gen\/321\?seed=r&X-Amz-Signature=btrfly-redacted&X-Amz-Date=20261207T000000Z$/) });

  // Offline: the origin is gone, the same URLs are answered from the archive.
  await origin.close();
  const play = await runCli(['run', '--playback', '--tag=tokens', '--archive', archive, '--', 'sh', '-c', script]);
  // The redirect's recorded Location, followed, is the recorded request of the signed URL.
  expect(play.stderr).toMatch(new RegExp(`${requests} hits, 0 misses`));
  expect(play.code).toBe(0);
  // Another host (another redact key): the secret names still match, as they need no key...
  const otherKey = { env: { BTRFLY_REDACT_KEY: 'ab'.repeat(32) } };
  const elsewhere = await runCli(['run', '--playback', '--tag=tokens', '--archive', archive, '--', 'sh', '-c', script.replace(` && curl -sSf -o /dev/null '${hashedUrl}'`, '')], otherKey);
  expect(elsewhere.stderr).toMatch(new RegExp(`${requests - 1} hits, 0 misses`));
  expect(elsewhere.code).toBe(0);
  // ...but a --redact-query hash differs: the miss says which parameter, and why it may.
  const other = await runCli(['run', '--playback', '--tag=tokens', '--archive', archive, '--', 'curl', '-s', '-o', '/dev/null', hashedUrl], otherKey);
  expect(other.stderr).toContain(
    "(redacted session differs: the build sent another value, or this host's redact key is not the recording's (share it with BTRFLY_REDACT_KEY))",
  );
  expect(other.code).toBe(3);

  expect(secretsIn(archive, [...planted.map(([, token]) => token), signedToken, hashedToken])).toEqual([]);
  expect(secretsIn(archive, [kept])).toContain(`${kept} in a git object`);
});

test('an --append onto a recording that keeps a secret name in clear is refused in one line, and nothing is recorded', async () => {
  const archive = join(tmpDir(), 'archive');
  const flags = ['--archive', archive, '--resolve', 'secret.test:127.0.0.1'];
  const url = `http://secret.test:${port}/kept?token=CLEAR-on-purpose`;
  expect((await runCli(['run', '--record', '--tag=kept', ...flags, '--keep-query', 'token', '--', 'curl', '-sf', '-o', '/dev/null', url])).code).toBe(0);
  const log = async () => (await runCli(['log', 'kept', '--archive', archive])).stdout;
  const before = await log();
  const append = await runCli(['run', '--record', '--append', '--tag=kept', ...flags, '--', 'curl', '-sf', '-o', '/dev/null', `http://secret.test:${port}/more`]);
  expect(append.stderr).toBe(
    'btrfly: tag "kept" holds query parameter "token" in clear (recorded before btrfly redacted it): record the tag again without --append, or keep it in clear with --keep-query token\n',
  );
  expect(append.code).toBe(2);
  expect(await log()).toBe(before);
  // Kept again, the append goes ahead.
  expect((await runCli(['run', '--record', '--append', '--tag=kept', ...flags, '--keep-query', 'token', '--', 'curl', '-sf', '-o', '/dev/null', `http://secret.test:${port}/more`])).code).toBe(0);
});
