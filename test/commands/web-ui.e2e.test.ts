/**
 * The web UI of `btrfly serve`, opened in a real browser (Debian's headless Chromium driven by
 * playwright-core). The service runs on loopback from a config file (a flag overrides one of
 * its settings); two recordings of a tag and one of another team's tag are made through the
 * real proxy with curl against a test origin; a playback session stays open with hits and a
 * miss. A user logs in with a token scoped to `team-a/*` and reads what the UI shows.
 *
 * `BTRFLY_UI_SCREENSHOTS=docs npx jest test/commands/web-ui.e2e.test.ts` writes the
 * screenshots of docs/ (ui-*.png).
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { onPath } from '../../src/engine/host/config';
import { serviceRequest, type Login } from '../../src/engine/service/service-client';
import type { RegisteredSession } from '../../src/engine/service/service';
import { formatSize } from '../../src/format/size';
import { createToken, run, runCli, serviceDir, startOrigin, startService, type Origin } from '../helpers';
import { describeWhen } from '../helpers/when';

/** Debian's chromium package (never a browser downloaded by playwright); BTRFLY_CHROMIUM names another. */
const CHROMIUM = [process.env.BTRFLY_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((c) => c && existsSync(c));
const maybe = describeWhen(CHROMIUM && onPath('curl') ? undefined : 'chromium or curl (apt-get install chromium curl)');
const SHOTS = process.env.BTRFLY_UI_SCREENSHOTS;

/**
 * A URL that would be markup if the UI ever put an archive string into HTML. The proxy
 * records URLs as WHATWG URL parses them (`<` becomes `%3C`), but `btrfly import` takes a
 * HAR's URLs as they are, so an archive can hold anything.
 */
const HOSTILE_URL = `https://evil.test/<img src=x onerror="document.title='pwned'">`;

maybe('the web UI in headless Chromium', () => {
  const serveDir = serviceDir('btrfly-web-ui-');
  const { work, archive, tokens, caPath } = serveDir;
  let origin: Origin;
  let api = '';
  let proxyPort = 0;
  let admin: Login;
  let teamA = '';
  let browser: Browser;
  let page: Page;
  const requested: string[] = [];
  const originUrl = (p: string) => origin.urlFor(p, 'origin.test');

  /** Opens a session for this host (127.0.0.1) on the service, runs curl through its proxy, and returns the session. */
  const session = async (mode: 'record' | 'playback', tag: string, paths: string[]) => {
    const { session: s } = await serviceRequest<RegisteredSession>(admin, 'POST', '/v1/sessions', { tag, mode });
    for (const p of paths) {
      await run('curl', ['-s', '-o', '/dev/null', '--globoff', '-x', `http://127.0.0.1:${proxyPort}`, '--cacert', caPath, originUrl(p)]);
    }
    return s;
  };
  const record = async (tag: string, paths: string[]) => {
    const s = await session('record', tag, paths);
    await serviceRequest(admin, 'DELETE', `/v1/sessions/${s.id}`);
  };
  const shot = async (name: string) => {
    if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `ui-${name}.png`), fullPage: true });
  };
  /** The text of each cell of a table's body, row by row, as the user sees it. */
  const cells = (selector: string): Promise<string[][]> =>
    page.locator(`${selector} tbody tr`).evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => (c as unknown as { innerText: string }).innerText)));

  beforeAll(async () => {
    // The origin's files: hello.txt, and two versions of an npm package at a registry's paths.
    const files = path.join(work, 'files');
    await fs.mkdir(path.join(files, 'npm', 'left-pad', '-'), { recursive: true });
    await fs.copyFile(path.join(__dirname, '..', 'fixtures', 'origin-files', 'hello.txt'), path.join(files, 'hello.txt'));
    for (const v of ['1.3.0', '1.4.0']) await fs.writeFile(path.join(files, 'npm', 'left-pad', '-', `left-pad-${v}.tgz`), `left-pad ${v}\n`);
    origin = await startOrigin({ https: true, dir: files });
    const har = path.join(work, 'hostile.har');
    const entry = { request: { method: 'GET', url: HOSTILE_URL, headers: [] }, response: { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: [], content: { size: 2, mimeType: 'text/plain', text: 'hi' } } };
    await fs.writeFile(har, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries: [entry] } }));
    expect((await runCli(['import', har, '--tag', 'team-a/imported', '--archive', archive])).code).toBe(0);
    const create = (scope: string, tags: string) => createToken(tokens, scope, tags);
    const adminToken = await create('admin', '*');
    teamA = await create('record,playback', 'team-a/*');
    const config = {
      // An address nothing can listen on: --address must win over it.
      address: '192.0.2.1',
      resolve: ['origin.test:127.0.0.1'],
      upstreamCa: [origin.caPath],
      // The origin is on the service host's loopback, denied by default.
      allowUpstream: ['127.0.0.0/8'],
    };
    const started = await startService(serveDir, config, ['--address', '127.0.0.1']);
    ({ proxyPort, api } = started);
    admin = { url: api, token: adminToken, caPem: started.caPem };

    await record('team-a/app', ['/gen/1000?seed=1', '/counter', '/files/hello.txt', '/files/npm/left-pad/-/left-pad-1.3.0.tgz']);
    await record('team-a/app', ['/gen/2048?seed=2', '/counter', '/files/hello.txt', '/files/npm/left-pad/-/left-pad-1.4.0.tgz']);
    await record('team-b/secret', ['/gen/3000?seed=3']);
    // Left open: the sessions view shows it live, with two hits and a miss.
    await session('playback', 'team-a/app', ['/counter', '/files/hello.txt', '/gen/1?seed=9']);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    // The API's certificate comes from btrfly's CA, which this browser profile does not trust;
    // trusting it would mean writing to an NSS database, so certificate errors are ignored instead.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
    page = await context.newPage();
    page.on('request', (r) => requested.push(r.url()));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  test('a wrong token is refused with the service\'s message; a scoped token logs in and sees only its tags', async () => {
    const first = await page.goto(`${api}/`);
    expect(first?.url()).toBe(`${api}/ui/`);
    expect(first?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.fill('#token', 'btf_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    await page.click('form.login button');
    await expect(page.locator('.error').innerText()).resolves.toMatch(/^the btrfly service refused the token/);

    await page.fill('#token', teamA);
    await page.click('form.login button');
    await page.waitForSelector('#tags');
    await expect(page.locator('#who').innerText()).resolves.toMatch(/^token [0-9a-f]{12}: record,playback on team-a\/\*$/);
    const { stdout } = await runCli(['tags', '--json', '--archive', archive]);
    const app = (JSON.parse(stdout) as { tag: string; size: number; storedSize: number }[]).find((t) => t.tag === 'team-a/app')!;
    const date = expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    expect(await cells('#tags')).toEqual([
      ['team-a/app', '2', '4', formatSize(app.size), formatSize(app.storedSize), date],
      ['team-a/imported', '1', '1', '2 B', expect.stringMatching(/B$/), date],
    ]);
    expect(await page.content()).not.toContain('team-b');
    await shot('tags');
  });

  test('a tag\'s history, a recording\'s entries with sizes and full digests, a hostile URL shown as text', async () => {
    await page.getByRole('link', { name: 'team-a/app', exact: true }).click();
    await page.waitForSelector('#history');
    const history = await cells('#history');
    expect(history).toHaveLength(2);
    expect(history[0][5]).toBe(`diff with ${history[1][0]}`);
    expect(history[1][5]).toBe('first recording');

    await page.locator('#history').getByRole('link', { name: history[1][0], exact: true }).click();
    await page.waitForSelector('#entries');
    const { stdout } = await runCli(['show', `team-a/app@${history[1][0]}`, '--json', '--archive', archive]);
    const entries = (JSON.parse(stdout) as { entries: { request: { method: string; url: string }; response: { status: number; content: { size: number; sha256: string } } }[] }).entries;
    expect(await cells('#entries')).toEqual(
      entries.map((e) => [e.request.method, String(e.response.status), formatSize(e.response.content.size), e.response.content.sha256, e.request.url]),
    );
    expect(entries.map((e) => e.request.url)).toContain(originUrl('/gen/1000?seed=1'));
    await shot('recording');

    await page.goto(`${api}/ui/#/recording/${encodeURIComponent('team-a/imported')}`);
    await page.locator('h1', { hasText: 'team-a/imported' }).waitFor();
    expect((await cells('#entries'))[0][4]).toBe(HOSTILE_URL);
    expect(await page.locator('#entries img').count()).toBe(0);
    expect(await page.title()).toBe('btrfly');
  });

  test('the diff of the two recordings: packages first, then added, removed and changed URLs with sizes and digests', async () => {
    await page.goto(`${api}/ui/#/tag/${encodeURIComponent('team-a/app')}`);
    await page.locator('h1', { hasText: 'Tag team-a/app' }).waitFor();
    await page.click('form.compare button');
    await page.waitForSelector('#changed');
    expect(await cells('#packages')).toEqual([['upgraded', 'left-pad', '1.3.0 → 1.4.0', 'npm']]);
    await expect(page.locator('#metadata').innerText()).resolves.toBe('Metadata: 0 refreshed, 0 new, 0 gone');
    await expect(page.locator('.meta').innerText()).resolves.toBe('1 added, 1 removed, 1 changed, 1 unchanged');
    const added = await cells('#added');
    const removed = await cells('#removed');
    const changed = await cells('#changed');
    expect(added).toEqual([['GET', '200', '2.0 KiB', expect.stringMatching(/^[0-9a-f]{64}$/), originUrl('/gen/2048?seed=2')]]);
    expect(removed).toEqual([['GET', '200', '1000 B', expect.stringMatching(/^[0-9a-f]{64}$/), originUrl('/gen/1000?seed=1')]]);
    expect(changed).toEqual([['GET', '200', '8 B', expect.stringMatching(/^[0-9a-f]{64}\n→ [0-9a-f]{64}$/), originUrl('/counter')]]);
    await shot('diff');
  });

  test('live sessions with their hits and misses, refreshed while open', async () => {
    await page.getByRole('link', { name: 'Live sessions' }).click();
    await page.waitForSelector('#sessions');
    expect(await cells('#sessions')).toEqual([
      ['playback', 'team-a/app', '127.0.0.1', expect.stringMatching(/Z$/), '3', expect.stringMatching(/ B$/), '2', '1', '0'],
    ]);
    // One more hit while the page is open: the view refreshes itself.
    await run('curl', ['-s', '-o', '/dev/null', '-x', `http://127.0.0.1:${proxyPort}`, '--cacert', caPath, originUrl('/counter')]);
    await page.locator('#sessions tbody td:nth-child(7)', { hasText: /^3$/ }).waitFor({ timeout: 10_000 });
    await shot('sessions');
  });

  test('storage: the archive on disk and what each visible tag reaches', async () => {
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.waitForSelector('#storage');
    let bytes = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const d of await fs.readdir(dir, { withFileTypes: true })) {
        if (d.isDirectory()) await walk(path.join(dir, d.name));
        else bytes += (await fs.stat(path.join(dir, d.name))).size;
      }
    };
    await walk(path.join(archive, 'objects'));
    const text = await page.locator('#storage').innerText();
    expect(text).toContain(`Archive on disk\n${formatSize(bytes)} in `);
    expect(text).toMatch(/Disk\n\S+ \S+ free of \S+ \S+/);
    const { stdout } = await runCli(['tags', '--json', '--archive', archive]);
    const app = (JSON.parse(stdout) as { tag: string; storedSize: number }[]).find((t) => t.tag === 'team-a/app')!;
    expect((await cells('#storage-tags'))[0]).toEqual(['team-a/app', formatSize(app.storedSize)]);
    expect((await cells('#storage-tags')).map((r) => r[0])).toEqual(['team-a/app', 'team-a/imported']);
    await shot('storage');
  });

  test('the page loaded nothing from anywhere but the service, and a token cannot read another team\'s tag', async () => {
    expect(requested.length).toBeGreaterThan(5);
    for (const u of requested) expect(u.startsWith(`${api}/`)).toBe(true);
    const read = (p: string) => serviceRequest({ ...admin, token: teamA }, 'GET', p);
    await expect(read('/v1/recording?spec=team-b/secret')).rejects.toThrow(/^token [0-9a-f]{12} may not read tag "team-b\/secret" \(its tags: team-a\/\*\)/);
    await expect(read('/v1/diff?from=team-a/app&to=team-b/secret')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(read('/v1/log?tag=team-b/secret')).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  test('a link with a broken %-escape shows one line saying so, not the page it came from', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.evaluate("location.hash = '#/tag/team-a%2Fap%E0'");
    await expect(page.locator('main .error').innerText({ timeout: 5000 })).resolves.toBe('the address #/tag/team-a%2Fap%E0 holds a broken %-escape: follow a link of this page instead');
    expect(errors).toEqual([]);
  });
});
