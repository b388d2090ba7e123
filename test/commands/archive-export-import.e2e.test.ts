/**
 * Standard formats in and out: `btrfly export` of the example archive's recordings as HAR
 * (checked against the HAR 1.2 structure devtools expect, bodies decoded and hashed) and as
 * WARC (read back with warcio), and `btrfly import` of a HAR, from btrfly itself and from a
 * browser, played back afterwards.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WARCParser } from 'warcio';
import { copyFixtureArchive, gitFsck, runCli, runOk, startOrigin, tmpDir } from '../helpers';

/* eslint-disable @typescript-eslint/no-explicit-any -- HAR and WARC JSON read back from files is walked field by field; toMatchObject checks its shape */

const SMALL_2 = 'example/small@2e8eeff';
const LARGE = 'example/large@0e9df99';
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The fields HAR 1.2 requires of an entry, with their types (http://www.softwareishard.com/blog/har-12-spec/). */
function expectHarEntry(e: Record<string, any>): void {
  expect(e).toMatchObject({
    startedDateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    time: expect.any(Number),
    request: {
      method: expect.any(String),
      url: expect.stringMatching(/^https?:\/\//),
      httpVersion: expect.any(String),
      cookies: expect.any(Array),
      headers: expect.any(Array),
      queryString: expect.any(Array),
      headersSize: expect.any(Number),
      bodySize: expect.any(Number),
    },
    response: {
      status: expect.any(Number),
      statusText: expect.any(String),
      httpVersion: expect.any(String),
      cookies: expect.any(Array),
      headers: expect.any(Array),
      content: { size: expect.any(Number), mimeType: expect.any(String) },
      redirectURL: expect.any(String),
      headersSize: expect.any(Number),
      bodySize: expect.any(Number),
    },
    cache: expect.any(Object),
    timings: { send: expect.any(Number), wait: expect.any(Number), receive: expect.any(Number) },
  });
  for (const h of [...e.request.headers, ...e.response.headers]) expect(h).toEqual({ name: expect.any(String), value: expect.any(String) });
}

describe('btrfly export and import', () => {
  let archive: string;
  let out: string;
  const cli = (...args: string[]) => runCli([...args, '--archive', archive], { timeoutMs: 120_000 });
  const manifestOf = async (spec: string) => JSON.parse((await cli('show', spec, '--json')).stdout).entries as Array<Record<string, any>>;

  beforeAll(() => {
    archive = copyFixtureArchive();
    out = tmpDir();
  });

  it('export --format har: a HAR 1.2 file whose bodies are the recorded bytes', async () => {
    const file = join(out, 'small.har');
    const r = await cli('export', SMALL_2, '--format', 'har', '-o', file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`exported ${SMALL_2} (10 entries, 6.0 KiB) to ${file} as HAR\n`);
    const har = JSON.parse(readFileSync(file, 'utf8'));
    expect(har.log).toMatchObject({ version: '1.2', creator: { name: 'btrfly', version: expect.any(String) }, pages: [] });
    const manifest = await manifestOf(SMALL_2);
    expect(har.log.entries.map((e: any) => `${e.request.method} ${e.request.url}`)).toEqual(manifest.map((e) => `${e.request.method} ${e.request.url}`));
    har.log.entries.forEach((e: any, i: number) => {
      expectHarEntry(e);
      const { content } = e.response;
      const bytes = content.encoding === 'base64' ? Buffer.from(content.text, 'base64') : Buffer.from(content.text ?? '');
      expect(`${e.request.url} ${sha256(bytes)}`).toBe(`${e.request.url} ${manifest[i].response.content.sha256}`);
      expect(e.response.status).toBe(manifest[i].response.status);
    });
    const gz = har.log.entries.find((e: any) => e.request.url.endsWith('/gz/40000'));
    expect(Buffer.from(gz.response.content.text, 'base64').subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    // Volatile headers (Date) are kept beside the manifest and put back in the export.
    expect(gz.response.headers.map((h: any) => h.name.toLowerCase())).toContain('date');
    const redirect = har.log.entries.find((e: any) => e.response.status === 302);
    expect(redirect.response.redirectURL).toBe('https://cdn.test:48443/files/hello.txt');
  });

  it('export to a .warc name: WARC records warcio reads, multi-part bodies whole', async () => {
    const file = join(out, 'large.warc');
    const r = await cli('export', LARGE, '-o', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`exported ${LARGE} (2 entries, 27 MiB) to ${file} as WARC\n`);
    const manifest = await manifestOf(LARGE);
    const seen: string[] = [];
    for await (const rec of new WARCParser(createReadStream(file))) {
      if (rec.warcType !== 'response') {
        await rec.readFully(false);
        seen.push(`${rec.warcType} ${rec.warcTargetURI ?? ''}`.trim());
        continue;
      }
      const hash = createHash('sha256');
      for await (const chunk of rec) hash.update(chunk as Uint8Array);
      seen.push(`response ${rec.warcTargetURI} ${rec.httpHeaders?.statusCode} ${hash.digest('hex')}`);
    }
    expect(seen).toEqual([
      'warcinfo',
      ...manifest.flatMap((e) => [`response ${e.request.url} ${e.response.status} ${e.response.content.sha256}`, `request ${e.request.url}`]),
    ]);
  });

  it('export errors: unknown tag, unwritable place; no file left behind', async () => {
    const file = join(out, 'none.har');
    const r = await cli('export', 'nope', '-o', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^btrfly: tag "nope" not found in archive .*: run "btrfly tags" to list tags\n$/);
    expect(existsSync(file)).toBe(false);
    const nowhere = await cli('export', SMALL_2, '-o', join(out, 'no', 'such', 'dir', 'x.har'));
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr.trim().split('\n')).toHaveLength(1);
    expect(nowhere.stderr).toMatch(/^btrfly: cannot write .*x\.har: the directory .*dir does not exist: create it, or give a path in an existing directory\n$/);
    const fmt = await cli('export', SMALL_2, '--format', 'zip', '-o', file);
    expect(fmt.code).toBe(2);
    // A directory is refused before anything is written (no temp file of the whole export in it).
    const aDir = await cli('export', SMALL_2, '-o', out);
    expect(aDir).toMatchObject({ code: 2, stderr: `btrfly: cannot write ${out}: it is a directory: give the name of a file (in it, say: ${join(out, 'NAME')})\n` });
    const sbomDir = await cli('sbom', SMALL_2, '-o', out);
    expect(sbomDir).toMatchObject({ code: 2, stderr: `btrfly: cannot write ${out}: it is a directory: give the name of a file (in it, say: ${join(out, 'NAME')})\n` });
  });

  it('import of a btrfly HAR gives the same recording back, and it plays back', async () => {
    const file = join(out, 'small.har');
    if (!existsSync(file)) expect((await cli('export', SMALL_2, '-o', file)).code).toBe(0);
    const r = await cli('import', file, '--tag=imported');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^imported 10 entries into tag imported \([0-9a-f]{7}\)\n$/);
    const d = await cli('diff', SMALL_2, 'imported');
    expect(d.stdout.trimEnd().split('\n').at(-1)).toBe('0 added, 0 removed, 0 changed, 10 unchanged (±0 B)');
    expect((await cli('log', 'imported')).stdout).toMatch(/ 10 entries, 6\.0 KiB {2}import imported: 10 entries from small\.har \(btrfly /);
    await gitFsck(archive);

    const counter = 'https://origin.test:48443/counter';
    const play = await runCli(['run', '--playback', '--tag=imported', '--archive', archive, '--', 'bash', '-c', `curl -sSf ${counter}; curl -sSf ${counter}`]);
    expect(play.code).toBe(0);
    expect(play.stdout).toBe('count 3\ncount 4\n');
  });

  it('a HAR of a recording with --redact-query and --ignore-query imports with both: the same manifest, and it plays back', async () => {
    const origin = await startOrigin();
    try {
      const url = (query: string) => origin.urlFor(`/counter?${query}`, 'origin.test');
      const rec = await runCli(
        ['run', '--record', '--tag=redacted', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--redact-query', 'token', '--ignore-query', 'origin.test=ts', '--', 'curl', '-sSf', url('token=s3cret-value&ts=1')],
        { timeoutMs: 120_000 },
      );
      expect(rec.code).toBe(0);
      const file = join(out, 'redacted.har');
      expect((await cli('export', 'redacted', '-o', file)).code).toBe(0);
      expect(readFileSync(file, 'utf8')).not.toContain('s3cret-value');
      expect(await cli('import', file, '--tag=redacted-imported')).toMatchObject({ code: 0, stderr: '' });
      const manifest = async (tag: string) => (await runOk('git', ['--git-dir', archive, 'show', `refs/heads/${tag}:manifest.json`])).stdout;
      expect(await manifest('redacted-imported')).toBe(await manifest('redacted'));
      // Another timestamp (ignored) and the same secret (matched by its hash), as the recording would.
      const play = await runCli(['run', '--playback', '--tag=redacted-imported', '--archive', archive, '--', 'curl', '-sSf', url('token=s3cret-value&ts=2')]);
      expect(play).toMatchObject({ code: 0, stdout: rec.stdout });
      // A HAR that names a redacted parameter but holds its value in clear (written by hand): hashed all the same.
      const clear = join(out, 'redacted-clear.har');
      writeFileSync(clear, readFileSync(file, 'utf8').replace(/token=btrfly-hmac:[0-9a-f]{64}/g, 'token=s3cret-value'));
      expect(await cli('import', clear, '--tag=redacted-clear')).toMatchObject({ code: 0, stderr: '' });
      expect(await manifest('redacted-clear')).toBe(await manifest('redacted'));
    } finally {
      await origin.close();
    }
  });

  it('import of a browser HAR: decoded text bodies, entries without a body skipped and named', async () => {
    const har = {
      log: {
        version: '1.2',
        creator: { name: 'Firefox', version: '140.0' },
        entries: [
          {
            startedDateTime: '2025-01-01T00:00:00.000Z',
            request: { method: 'GET', url: 'https://site.test/app.js', httpVersion: 'HTTP/2', headers: [{ name: ':authority', value: 'site.test' }, { name: 'Accept', value: '*/*' }, { name: 'Accept-Encoding', value: 'gzip, br' }] },
            response: {
              status: 200,
              statusText: 'OK',
              httpVersion: 'HTTP/2',
              headers: [{ name: 'content-type', value: 'text/javascript' }, { name: 'content-encoding', value: 'br' }, { name: 'date', value: 'Wed, 01 Jan 2025 00:00:00 GMT' }, { name: 'vary', value: 'Accept-Encoding' }],
              content: { size: 23, mimeType: 'text/javascript', text: 'console.log("hé, ☃");\n' },
            },
          },
          {
            request: { method: 'GET', url: 'https://site.test/old', headers: [] },
            response: { status: 301, statusText: 'Moved Permanently', headers: [{ name: 'location', value: '/app.js' }], content: { size: 0, mimeType: '' } },
          },
          {
            request: { method: 'GET', url: 'https://site.test/missing.png', headers: [] },
            response: { status: 200, statusText: 'OK', headers: [{ name: 'content-type', value: 'image/png' }], content: { size: 5000, mimeType: 'image/png' } },
          },
        ],
      },
    };
    const file = join(out, 'browser.har');
    writeFileSync(file, JSON.stringify(har));
    const r = await cli('import', file, '--tag=browser');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('skipped GET https://site.test/missing.png: the HAR holds no body for it\n');
    expect(r.stdout).toMatch(/^imported 2 entries into tag browser /);

    const [app, old] = await manifestOf('browser');
    const text = 'console.log("hé, ☃");\n';
    expect(app.request).toEqual({ method: 'GET', url: 'https://site.test/app.js', headers: [{ name: 'accept', value: '*/*' }, { name: 'accept-encoding', value: 'gzip, br' }] });
    // The HAR holds the decoded body: its Content-Encoding no longer applies; Date is volatile.
    expect(app.response.headers).toEqual([{ name: 'content-type', value: 'text/javascript' }, { name: 'vary', value: 'Accept-Encoding' }]);
    expect(app.response.content).toMatchObject({ size: Buffer.byteLength(text), sha256: sha256(text), mimeType: 'text/javascript' });
    expect(app.response.content.encoding).toBeUndefined();
    expect(old.response).toMatchObject({ status: 301, content: { size: 0 } });
    await gitFsck(archive);

    const play = await runCli(['run', '--playback', '--tag=browser', '--archive', archive, '--', 'curl', '-sSf', '-H', 'Accept-Encoding: gzip, br', 'https://site.test/app.js']);
    expect(play.code).toBe(0);
    expect(play.stdout).toBe(text);
  });

  it('import of a HAR with entries no HTTP answer can replay: skipped and named, and the tag stays readable', async () => {
    const entry = (url: string, over: { method?: string; status?: number; headers?: { name: string; value: string }[] } = {}) => ({
      request: { method: over.method ?? 'GET', url, headers: [] },
      response: { status: over.status ?? 200, statusText: 'OK', headers: over.headers ?? [], content: { size: 3, mimeType: 'text/plain', text: 'ok\n' } },
    });
    const har = {
      log: {
        version: '1.2',
        entries: [
          entry('https://site.test/good'),
          entry('https://site.test/blocked', { status: 0 }), // a request the browser blocked or cancelled
          entry('data:text/plain,ok'),
          entry('https://site.test/method', { method: 'G ET' }),
          entry('https://site.test/header', { headers: [{ name: 'X-Split', value: 'a\r\nSet-Cookie: b=1' }] }),
        ],
      },
    };
    const file = join(out, 'unplayable.har');
    writeFileSync(file, JSON.stringify(har));
    const r = await cli('import', file, '--tag=unplayable');
    expect(r.stderr).toBe(
      [
        'skipped GET https://site.test/blocked: it got no HTTP answer (status 0: the request failed or was blocked)',
        'skipped GET data:text/plain,ok: it is not an http or https URL',
        'skipped G\\x20ET https://site.test/method: its method is not an HTTP method',
        'skipped GET https://site.test/header: its response header "X-Split" holds characters HTTP cannot carry',
        '',
      ].join('\n'),
    );
    expect(r.stdout).toMatch(/^imported 1 entries into tag unplayable /);
    expect(r.code).toBe(0);
    const show = await cli('show', 'unplayable');
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/ https:\/\/site\.test\/good\n$/);
    const play = await runCli(['run', '--playback', '--tag=unplayable', '--archive', archive, '--', 'curl', '-sSf', 'https://site.test/good']);
    expect([play.code, play.stdout]).toEqual([0, 'ok\n']);
  });

  it('import errors: not a HAR, no such file, nothing with a body; the tag is not created', async () => {
    const notJson = join(out, 'notes.har');
    writeFileSync(notJson, 'hello');
    const a = await cli('import', notJson, '--tag=bad');
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/^btrfly: notes\.har is not a HAR 1\.2 file: it is not JSON \([^\n]*\): export it again as HAR with content and retry\n$/);

    const b = await cli('import', join(out, 'absent.har'), '--tag=bad');
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^btrfly: cannot read .*absent\.har: no such file: give the path of a \.har file\n$/);

    const empty = join(out, 'empty.har');
    writeFileSync(empty, JSON.stringify({ log: { version: '1.2', entries: [{ request: { method: 'GET', url: 'https://x.test/' }, response: { status: 200, content: { size: 9 } } }] } }));
    const c = await cli('import', empty, '--tag=bad');
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/^btrfly: no entry of empty\.har has a response body: /);
    expect(c.stderr.trim().split('\n')).toHaveLength(1);

    expect((await cli('show', 'bad')).code).toBe(1);
    await gitFsck(archive);
  });

  it('import of a WARC btrfly exported: one line saying import reads HAR and how to get one; no tag', async () => {
    const warc = join(out, 'small.warc');
    expect((await cli('export', SMALL_2, '-o', warc)).code).toBe(0);
    const r = await cli('import', warc, '--tag=from-warc');
    expect([r.code, r.stderr]).toEqual([1, 'btrfly: small.warc is a WARC file: btrfly import reads HAR only: import a HAR of it (from "btrfly export T --format har", or a WARC-to-HAR tool)\n']);
    expect((await cli('show', 'from-warc')).code).toBe(1);
  });

  it('a hand-made HAR: headers that are not a list or have no name, a body in an encoding other than base64: one line each, no tag; a byte order mark is read past', async () => {
    const one = (request: Record<string, unknown>, response: Record<string, unknown>) =>
      JSON.stringify({ log: { version: '1.2', entries: [{ request: { method: 'GET', url: 'https://hand.test/x', ...request }, response: { status: 200, ...response } }] } });
    const body = { content: { size: 2, mimeType: 'text/plain', text: 'hi' } };
    const cases: Array<[string, string, string]> = [
      ['noname.har', one({ headers: [{ value: 'v' }] }, body), 'entry 0 request has a header without a name'],
      ['object.har', one({}, { headers: { 'Content-Type': 'text/plain' }, ...body }), 'entry 0 response headers are not a list of {"name", "value"}'],
      ['utf16.har', one({}, { content: { size: 2, text: 'hi', encoding: 'utf-16' } }), 'entry 0 has a response body in encoding "utf-16", not base64 or plain text'],
    ];
    for (const [name, text, what] of cases) {
      writeFileSync(join(out, name), text);
      const r = await cli('import', join(out, name), '--tag=hand');
      expect([r.code, r.stderr]).toEqual([1, `btrfly: ${name} is not a HAR 1.2 file: ${what}: export it again as HAR with content and retry\n`]);
    }
    expect((await cli('show', 'hand')).code).toBe(1);

    const bom = join(out, 'bom.har');
    writeFileSync(bom, `\ufeff${one({}, { headers: [{ name: 'Content-Type', value: 'text/plain' }], content: { size: 2, text: 'aGk=', encoding: 'base64' } })}`);
    const r = await cli('import', bom, '--tag=hand');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const play = await runCli(['run', '--playback', '--tag=hand', '--archive', archive, '--', 'curl', '-sSf', 'https://hand.test/x']);
    expect([play.code, play.stdout]).toEqual([0, 'hi']);
  });
});
