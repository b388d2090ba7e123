/**
 * An LFS archive and a remote on a path on the same file system each keep a file of their own
 * for every body: git-lfs's file agent hard-links objects both ways (it has no setting against
 * it), so damaging the remote's copy in place damaged the local one too, and the body could then
 * be fetched again only from that same damaged file. Now the local store gives each linked
 * object a copy of its own after a push or a pull, and a damaged remote leaves both archives whole.
 */
import { createHash, randomBytes } from 'node:crypto';
import { openSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, runOk, tmpDir } from '../helpers';

const lfsObject = (repo: string, oid: string): string => join(repo, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

test('push and pull through a remote on a path leave each side its own file; a damaged remote damages neither archive', async () => {
  const dir = tmpDir('btrfly-lfs-file-');
  const body = randomBytes(3 * 1024 * 1024 + 17);
  const sha = createHash('sha256').update(body).digest('hex');
  const har = join(dir, 'deps.har');
  const entry = {
    startedDateTime: '2026-01-01T00:00:00Z',
    time: 1,
    request: { method: 'GET', url: 'https://files.test/dep.tgz', httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
    response: {
      status: 200,
      statusText: 'OK',
      httpVersion: 'HTTP/1.1',
      headers: [{ name: 'Content-Type', value: 'application/octet-stream' }],
      cookies: [],
      content: { size: body.length, mimeType: 'application/octet-stream', text: body.toString('base64'), encoding: 'base64' },
      redirectURL: '',
      headersSize: -1,
      bodySize: -1,
    },
    cache: {},
    timings: { send: 0, wait: 1, receive: 0 },
  };
  writeFileSync(har, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries: [entry] } }));

  const local = join(dir, 'local');
  expect((await runCli(['init', '--lfs', '--archive', local])).code).toBe(0);
  expect((await runCli(['import', har, '--tag=deps', '--archive', local])).code).toBe(0);
  const remote = join(dir, 'remote.git');
  await runOk('git', ['init', '-q', '--bare', remote]);
  await runCli(['remote', 'add', 'hub', remote, '--archive', local]);
  const push = await runCli(['push', 'hub', '--archive', local], { timeoutMs: 120_000 });
  expect(push.stderr).toMatch(/^deps: pushed, new tag at/);
  expect(push.code).toBe(0);

  const other = join(dir, 'other');
  expect((await runCli(['init', '--lfs', '--archive', other])).code).toBe(0);
  await runCli(['remote', 'add', 'hub', remote, '--archive', other]);
  expect((await runCli(['pull', 'hub', '--archive', other], { timeoutMs: 120_000 })).code).toBe(0);

  // Three files, one link each, the same bytes.
  const files = [local, remote, other].map((repo) => lfsObject(repo, sha));
  for (const f of files) {
    expect(sha256(f)).toBe(sha);
    expect(statSync(f).nlink).toBe(1);
  }
  expect(new Set(files.map((f) => statSync(f).ino)).size).toBe(3);

  // The remote's copy edited in place (same length, same file): both archives still verify.
  const fd = openSync(files[1], 'r+');
  writeSync(fd, Buffer.from('damaged'), 0, 7, 1000);
  closeSync(fd);
  expect(sha256(files[1])).not.toBe(sha);
  for (const repo of [local, other]) {
    const verify = await runCli(['verify', '--archive', repo]);
    expect(verify.stdout).toMatch(/^ok: 1 tags, 1 recordings, 1 bodies/);
    expect(verify.code).toBe(0);
  }
});
