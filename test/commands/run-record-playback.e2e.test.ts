/**
 * Command mode as a user runs it: `btrfly run --record` around a build that downloads with
 * real clients (curl, node), the origin stopped, `btrfly run --playback` of the same build,
 * and the bytes compared. Then the things a user checks on a playback: ranges, resumed
 * downloads, conditional requests, repeated requests in recorded order, and misses.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { genBodySha256, gitFsck, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), new Writable({ write: (c, _e, cb) => (h.update(c), cb()) }));
  return h.digest('hex');
}

const BIG = 20 * 1024 * 1024 + 12345; // three parts in the archive

describe('btrfly run: record, then play back with the origin gone', () => {
  let origin: Origin;
  let archive: string;
  let out: string;
  let script: string;
  let upstream: string[];

  beforeAll(async () => {
    origin = await startOrigin({ https: true });
    archive = join(tmpDir(), 'archive');
    out = tmpDir();
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    script = join(tmpDir(), 'build.sh');
    writeFileSync(
      script,
      [
        'set -eu',
        'OUT="$1"',
        `curl -sSf -o "$OUT/big" "${base}/gen/${BIG}?seed=7"`,
        `curl -sSf -o "$OUT/small" "${base}/files/hello.txt" || curl -sSf -o "$OUT/small" "${base}/gen/100?seed=1"`,
        `curl -sSf --compressed -o "$OUT/gz" "${base}/gz/200000"`,
        `curl -sSf -o "$OUT/c1" "${base}/counter"`,
        `curl -sSf -o "$OUT/c2" "${base}/counter"`,
        `node -e "fetch('${base}/gen/5000?seed=3').then(r=>r.arrayBuffer()).then(b=>require('fs').writeFileSync(process.argv[1], Buffer.from(b)))" "$OUT/node"`,
        '',
      ].join('\n'),
    );
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`];
  });

  it('records the build, exit 0, and the tag exists', async () => {
    const rec = await runCli(['run', '--record', '--tag=build1', '--archive', archive, ...upstream, '--', 'bash', script, out], { timeoutMs: 120_000 });
    expect(rec.stderr).toMatch(/recorded tag "build1"/);
    expect(rec.code).toBe(0);
    expect(await sha256File(join(out, 'big'))).toBe(await genBodySha256(BIG, 7));
    await gitFsck(archive);
  });

  it('plays the build back byte for byte with the origin stopped', async () => {
    await origin.close();
    const again = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=build1', '--archive', archive, '--', 'bash', script, again], { timeoutMs: 120_000 });
    expect(play.stderr).toMatch(/0 misses/);
    // The bytes sent are counted as they go, also when a client hangs up right after the last one.
    expect(play.stderr).toMatch(/6 requests, [1-9][0-9.]* MiB, 6 hits/);
    expect(play.code).toBe(0);
    for (const f of ['big', 'small', 'gz', 'c1', 'c2', 'node']) {
      expect(`${f} ${await sha256File(join(again, f))}`).toBe(`${f} ${await sha256File(join(out, f))}`);
    }
  });

  it('answers ranges and resumes from the archive', async () => {
    const dir = tmpDir();
    const url = origin.urlFor(`/gen/${BIG}?seed=7`, 'origin.test');
    const cmd = [
      'set -eu',
      `curl -sSf -r 9437184-9437283 -o "${dir}/range" "${url}"`,
      `curl -sSf -r 0-9437190 -o "${dir}/resume" "${url}"`,
      `curl -sSf -C - -o "${dir}/resume" "${url}"`,
      `curl -sSf -D "${dir}/head" -o /dev/null "${url}"`,
      `etag=$(grep -i '^etag:' "${dir}/head" | cut -d' ' -f2 | tr -d '\\r')`,
      `curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "${url}" > "${dir}/inm"`,
      `curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "other"' "${url}" > "${dir}/inm-other"`,
    ].join('\n');
    const play = await runCli(['run', '--playback', '--tag=build1', '--archive', archive, '--', 'bash', '-c', cmd], { timeoutMs: 120_000 });
    expect(play.code).toBe(0);
    expect(await sha256File(join(dir, 'range'))).toBe(await genBodySha256(BIG, 7, { start: 9437184, end: 9437284 }));
    expect(await sha256File(join(dir, 'resume'))).toBe(await genBodySha256(BIG, 7));
    expect(readFileSync(join(dir, 'inm'), 'utf8')).toBe('304');
    expect(readFileSync(join(dir, 'inm-other'), 'utf8')).toBe('200');
  });

  it('plays a repeated request back in recorded order, the last answer repeating', async () => {
    const url = origin.urlFor('/counter', 'origin.test');
    const cmd = `for i in 1 2 3; do curl -sSf "${url}"; done`;
    const play = await runCli(['run', '--playback', '--tag=build1', '--archive', archive, '--', 'bash', '-c', cmd], { timeoutMs: 60_000 });
    expect(play.code).toBe(0);
    expect(play.stdout).toBe('count 1\ncount 2\ncount 2\n');
  });

  it('records back-to-back repeated requests in the order they were made, each a new answer', async () => {
    // The next curl starts as soon as the last one has its answer, while the recorder may still
    // be storing it: it must neither share that answer nor take an earlier ordinal.
    const counterOrigin = await startOrigin({ https: true });
    const up = ['--upstream-ca', counterOrigin.caPath!, '--resolve', `origin.test:${counterOrigin.host}`];
    const cmd = `for i in 1 2 3 4 5 6; do curl -sSf "${counterOrigin.urlFor('/counter', 'origin.test')}"; done`;
    const rec = await runCli(['run', '--record', '--tag=counter', '--archive', archive, ...up, '--', 'bash', '-c', cmd], { timeoutMs: 60_000 });
    expect(rec.code).toBe(0);
    const answers = [1, 2, 3, 4, 5, 6].map((n) => `count ${n}\n`).join('');
    expect(rec.stdout).toBe(answers);
    expect(rec.stderr).toMatch(/6 requests, 6 entries/);
    await counterOrigin.close();
    const play = await runCli(['run', '--playback', '--tag=counter', '--archive', archive, '--', 'bash', '-c', `${cmd}; curl -sSf "${counterOrigin.urlFor('/counter', 'origin.test')}"`], { timeoutMs: 60_000 });
    expect(play.code).toBe(0);
    expect(play.stdout).toBe(`${answers}count 6\n`);
  });

  it('decodes a recorded gzip body for a client that does not accept gzip', async () => {
    const url = origin.urlFor('/gz/200000', 'origin.test');
    const dir = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=build1', '--archive', archive, '--', 'curl', '-sSf', '-H', 'Accept-Encoding: identity', '-o', join(dir, 'plain'), url], { timeoutMs: 60_000 });
    expect(play.code).toBe(0);
    expect(await sha256File(join(dir, 'plain'))).toBe(await sha256File(join(out, 'gz')));
  });

  it('a request not recorded gets 404 with X-Btrfly: miss, is named at the end, and exits 3', async () => {
    const url = origin.urlFor('/gen/999?seed=1', 'origin.test');
    const play = await runCli(['run', '--playback', '--tag=build1', '--archive', archive, '--', 'curl', '-sS', '-D', '-', url], { timeoutMs: 60_000 });
    expect(play.code).toBe(3);
    expect(play.stdout).toMatch(/^HTTP\/1\.1 404/m);
    expect(play.stdout).toMatch(/x-btrfly: miss/i);
    expect(play.stdout).toContain('build1');
    expect(play.stderr).toContain(`GET ${url}`);
  });

  it('a rule recorded with the tag loosens matching, and --append keeps earlier entries', async () => {
    const origin2 = await startOrigin({ https: true });
    const up = ['--upstream-ca', origin2.caPath!, '--resolve', `origin.test:${origin2.host}`];
    const at = (p: string) => origin2.urlFor(p, 'origin.test');
    const rec = await runCli(['run', '--record', '--tag=rules', '--archive', archive, '--ignore-query', 'origin.test=_', ...up, '--', 'curl', '-sSf', '-o', '/dev/null', at('/gen/100?seed=1&_=123')], { timeoutMs: 60_000 });
    expect(rec.code).toBe(0);
    const more = await runCli(['run', '--record', '--append', '--tag=rules', '--archive', archive, ...up, '--', 'curl', '-sSf', '-o', '/dev/null', at('/gen/200?seed=2')], { timeoutMs: 60_000 });
    expect(more.code).toBe(0);
    await origin2.close();
    const cmd = `curl -sSf -o /dev/null "${at('/gen/100?seed=1&_=999')}" && curl -sSf -o /dev/null "${at('/gen/200?seed=2')}"`;
    const play = await runCli(['run', '--playback', '--tag=rules', '--archive', archive, '--', 'bash', '-c', cmd], { timeoutMs: 60_000 });
    expect(play.stderr).toMatch(/2 hits, 0 misses/);
    expect(play.code).toBe(0);
    const strict = await runCli(['run', '--playback', '--tag=rules', '--archive', archive, '--', 'curl', '-sS', '-o', '/dev/null', at('/gen/100?seed=9&_=1')], { timeoutMs: 60_000 });
    expect(strict.code).toBe(3);
    expect(strict.stderr).toMatch(/nearest: GET .*seed=1.*\(query differs\)/);
  });

  it('playback --append answers what it holds and records what is missing as a new recording', async () => {
    const origin3 = await startOrigin({ https: true });
    const up = ['--upstream-ca', origin3.caPath!, '--resolve', `origin.test:${origin3.host}`];
    const at = (p: string) => origin3.urlFor(p, 'origin.test');
    expect((await runCli(['run', '--record', '--tag=fill', '--archive', archive, ...up, '--', 'curl', '-sSf', '-o', '/dev/null', at('/gen/300?seed=3')], { timeoutMs: 60_000 })).code).toBe(0);
    await origin3.resetStats();
    const both = `curl -sSf -o /dev/null "${at('/gen/300?seed=3')}" && curl -sSf -o /dev/null "${at('/gen/400?seed=4')}"`;
    const fill = await runCli(['run', '--playback', '--append', '--tag=fill', '--archive', archive, ...up, '--', 'bash', '-c', both], { timeoutMs: 60_000 });
    expect(fill.stderr).toMatch(/1 hits, 0 misses/);
    expect(fill.stderr).toMatch(/--append recorded 1 missing entry as recording [0-9a-f]{12}/);
    expect(fill.code).toBe(0);
    expect((await origin3.stats()).total).toBe(1); // only the missing one went upstream
    await origin3.close();
    const play = await runCli(['run', '--playback', '--tag=fill', '--archive', archive, '--', 'bash', '-c', both], { timeoutMs: 60_000 });
    expect(play.stderr).toMatch(/2 hits, 0 misses/);
    expect(play.code).toBe(0);
  });

  it('playback --append names a missing request it could not fetch either (an upstream error) in its summary', async () => {
    // down.test has no address (.test is never delegated): the fetch fails, the client gets 502.
    const play = await runCli(['run', '--playback', '--append', '--tag=fill', '--archive', archive, '--', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://down.test/x'], { timeoutMs: 60_000 });
    expect(play.stdout).toBe('502');
    expect(play.stderr).toMatch(/^btrfly: played back tag "fill" .*: 1 requests, 0 B, 0 hits, 0 misses, 1 upstream errors$/m);
  });

  it('refuses a tag name git would refuse, with one line and exit 2', async () => {
    const r = await runCli(['run', '--record', '--tag=bad..name', '--archive', archive, '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/tag name "bad\.\.name" is invalid/);
  });
});

describe('btrfly run: a request body the server answered before reading it all', () => {
  it('is still recorded with its digest, so the same uploads play back (hits, not "body differs")', async () => {
    // A server that answers a POST without reading its body: Node drops the rest, and the connection.
    const server = http.createServer((_req, res) => res.end('ignored\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const archive = join(tmpDir(), 'archive');
    const upload = join(tmpDir(), 'upload.bin');
    writeFileSync(upload, createHash('sha512').update('seed').digest().toString('hex').repeat(8192));
    const posts = ['a', 'b', 'c', 'd'].map((p) => `curl -sS -o /dev/null -w '%{http_code} ' --data-binary @${upload} http://origin.test:${port}/${p}`).join('; ');
    try {
      const rec = await runCli(['run', '--record', '--tag=upload', '--archive', archive, '--resolve', 'origin.test:127.0.0.1', '--', 'sh', '-c', posts], { timeoutMs: 120_000 });
      expect(rec).toMatchObject({ code: 0, stdout: '200 200 200 200 ' });
    } finally {
      server.closeAllConnections();
      server.close();
    }
    const play = await runCli(['run', '--playback', '--tag=upload', '--archive', archive, '--', 'sh', '-c', posts], { timeoutMs: 120_000 });
    expect(play.stderr).toMatch(/4 requests, .* 4 hits, 0 misses/);
    expect(play).toMatchObject({ code: 0, stdout: '200 200 200 200 ' });
  });
});
