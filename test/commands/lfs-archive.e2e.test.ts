/**
 * Git LFS mode as a user runs it: `btrfly init --lfs`, a recorded build, `btrfly push` to a
 * file remote and to an LFS server over HTTPS with basic auth (test/fixtures/lfs-api.js behind
 * the git smart-HTTP server; the client is the real git-lfs), the remote's git objects staying
 * tiny, then `btrfly pull` into a fresh archive, verified and played back with the origin gone;
 * and a damaged LFS object on the remote refused at pull. The build's text download compresses:
 * it is kept as a zstd LFS object named by the zstd bytes' own SHA-256, and goes the same way.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { genBodySha256, gitFsck, runCli, runOk, startGitServer, startOrigin, testCa, tmpDir, type Origin } from '../helpers';

const BIG = 12 * 1024 * 1024 + 321;
/** A text download (the origin's /gz/N without Accept-Encoding: plain text, the same every time). */
const TEXT = 3_000_000;
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const lfsObject = (repo: string, oid: string): string => join(repo, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
/** Other bytes under an object's name, as a new file (git-lfs hard-links a file remote's objects). */
function damage(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] ^= 1;
  writeFileSync(`${path}.new`, bytes);
  renameSync(`${path}.new`, path);
}
/** The files kept in `<archive>/btrfly/damaged/`, relative to the archive. */
const aside = (archive: string): string[] =>
  (readdirSync(join(archive, 'btrfly', 'damaged'), { recursive: true }) as string[]).filter((f) => statSync(join(archive, 'btrfly', 'damaged', f)).isFile()).map((f) => join('btrfly', 'damaged', f));
const duBytes = async (dir: string): Promise<number> => Number((await runOk('du', ['-sb', dir])).stdout.split('\t')[0]);

/** A user's git setup for the HTTPS host: a credential helper with the password, and the host's CA. */
function gitUser(url: string, user: string, password: string): NodeJS.ProcessEnv {
  const dir = tmpDir('btrfly-gituser-');
  const creds = join(dir, 'credentials');
  writeFileSync(creds, `https://${user}:${password}@${new URL(url).host}\n`, { mode: 0o600 });
  const config = join(dir, 'gitconfig');
  writeFileSync(config, `[credential]\n\thelper = store --file=${creds}\n[http]\n\tsslCAInfo = ${testCa().caPath}\n`);
  return { GIT_CONFIG_GLOBAL: config, GIT_SSL_CAINFO: undefined };
}

describe('btrfly init --lfs: bodies as Git LFS objects, pushed and pulled through git-lfs', () => {
  let origin: Origin;
  let archive: string;
  let out: string;
  let script: string;
  let bigSha: string;
  let textSha: string;
  /** The LFS oid of the text body's zstd object. */
  let textOid: string;

  beforeAll(async () => {
    origin = await startOrigin({ https: true });
    archive = join(tmpDir(), 'archive');
    out = tmpDir();
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    script = join(tmpDir(), 'build.sh');
    writeFileSync(script, ['set -eu', 'OUT="$1"', `curl -sSf -o "$OUT/big" "${base}/gen/${BIG}?seed=5"`, `curl -sSf -o "$OUT/small" "${base}/gen/2000?seed=6"`, `curl -sSf -o "$OUT/index.txt" "${base}/gz/${TEXT}"`, ''].join('\n'));
    bigSha = await genBodySha256(BIG, 5);
  });

  afterAll(async () => {
    await origin?.close().catch(() => undefined);
  });

  it('records into an LFS archive: the body is one LFS object, git holds its pointer', async () => {
    const init = await runCli(['init', '--lfs', '--archive', archive]);
    expect(init.stdout).toMatch(/created archive .* \(bodies as Git LFS objects\)/);
    expect(init.code).toBe(0);
    const rec = await runCli(['run', '--record', '--tag=deps', '--archive', archive, '--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`, '--', 'bash', script, out], {
      timeoutMs: 120_000,
    });
    expect(rec.stderr).toMatch(/recorded tag "deps"/);
    expect(rec.code).toBe(0);
    expect(sha256(join(out, 'big'))).toBe(bigSha);
    expect(sha256(lfsObject(archive, bigSha))).toBe(bigSha);
    expect(await duBytes(join(archive, 'objects'))).toBeLessThan(256 * 1024);
    // The body is not in the body cache as well: one copy on disk.
    expect(existsSync(join(archive, 'btrfly', 'cache', bigSha.slice(0, 2), bigSha))).toBe(false);
    // The text body is kept zstd: one object, named by the zstd bytes' SHA-256 as the pointer (and its name) says.
    expect(statSync(join(out, 'index.txt')).size).toBe(TEXT);
    textSha = sha256(join(out, 'index.txt'));
    const names = (await runOk('git', ['--git-dir', archive, 'ls-tree', '-r', '--name-only', 'refs/heads/deps', `bodies/${textSha.slice(0, 2)}/${textSha}/`])).stdout.trim();
    textOid = /\/lfs-([0-9a-f]{64})\.zst$/.exec(names)?.[1] ?? `no zstd pointer in ${names}`;
    const zst = lfsObject(archive, textOid);
    expect(sha256(zst)).toBe(textOid);
    expect(statSync(zst).size).toBeLessThan(TEXT / 4);
    expect(existsSync(lfsObject(archive, textSha))).toBe(false);
    expect((await runOk('git', ['--git-dir', archive, 'cat-file', 'blob', `refs/heads/deps:${names}`])).stdout).toBe(
      `version https://git-lfs.github.com/spec/v1\noid sha256:${textOid}\nsize ${statSync(zst).size}\n`,
    );
    expect((await runCli(['verify', '--archive', archive])).stdout).toMatch(/^ok: 1 tags, 1 recordings, 3 bodies/);
    // init on an archive, and migrate without its target, are refused in one line.
    const again = await runCli(['init', '--lfs', '--archive', archive]);
    expect(again.stderr).toBe(`btrfly: ${archive} is an archive (Git LFS mode) already: give another --archive directory, or move a git mode archive to LFS with "btrfly migrate --lfs"\n`);
    expect(again.code).toBe(1);
    const bare = await runCli(['migrate', '--archive', archive]);
    expect(bare.stderr).toBe('btrfly: missing --lfs (the one migration there is: bodies to Git LFS objects); usage: btrfly migrate --lfs\n');
    expect(bare.code).toBe(2);
    await gitFsck(archive);
  });

  it('gc keeps a zstd LFS object that a tag shares with a recording kept aside (a failed build of another tag)', async () => {
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const failed = await runCli(
      ['run', '--record', '--tag=failed-build', '--archive', archive, '--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`, '--', 'bash', '-c', `curl -sSf -o /dev/null "${base}/gz/${TEXT}"; exit 1`],
      { timeoutMs: 120_000 },
    );
    expect(failed.stderr).toMatch(/the command failed \(exit 1\): tag "failed-build" is unchanged; its recording \(1 entry\) is kept aside as (\S+):/);
    expect(failed.code).toBe(1);
    const gc = await runCli(['gc', '--archive', archive]);
    expect(gc.code).toBe(0);
    expect(sha256(lfsObject(archive, textOid))).toBe(textOid);
    expect(await runCli(['verify', '--archive', archive])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: 1 tags, 1 recordings, 3 bodies/) });
    const id = /kept aside as (\S+):/.exec(failed.stderr)![1];
    expect((await runCli(['pending', 'drop', id, '--archive', archive])).code).toBe(0);
  });

  it('pushes to a file remote and pulls into a new archive that plays back offline', async () => {
    const remote = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', remote]);
    expect((await runCli(['remote', 'add', 'hub', remote, '--archive', archive])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', archive], { timeoutMs: 120_000 });
    expect(push.stderr + push.stdout).toMatch(/deps/);
    expect(push.code).toBe(0);
    expect(sha256(lfsObject(remote, bigSha))).toBe(bigSha);
    expect(sha256(lfsObject(remote, textOid))).toBe(textOid);
    expect(await duBytes(join(remote, 'objects'))).toBeLessThan(256 * 1024);
    // git-lfs itself finds every object the pointers name, and checks it.
    expect((await runOk('git', ['--git-dir', remote, 'lfs', 'fsck', '--objects', 'refs/heads/deps'])).stdout).toMatch(/Git LFS fsck OK/);

    const copy = join(tmpDir(), 'copy');
    expect((await runCli(['init', '--lfs', '--archive', copy])).code).toBe(0);
    expect((await runCli(['remote', 'add', 'hub', remote, '--archive', copy])).code).toBe(0);
    const pull = await runCli(['pull', 'hub', '--archive', copy], { timeoutMs: 120_000 });
    expect(pull.code).toBe(0);
    expect(sha256(lfsObject(copy, bigSha))).toBe(bigSha);
    expect(sha256(lfsObject(copy, textOid))).toBe(textOid);
    expect((await runCli(['verify', '--archive', copy])).stdout).toMatch(/^ok: 1 tags, 1 recordings, 3 bodies/);

    // A git mode archive takes the tag too: its bodies stay LFS objects there.
    const plain = join(tmpDir(), 'plain');
    expect((await runCli(['remote', 'add', 'hub', remote, '--archive', plain])).code).toBe(0);
    expect((await runCli(['pull', 'hub', '--archive', plain], { timeoutMs: 120_000 })).code).toBe(0);
    expect(sha256(lfsObject(plain, bigSha))).toBe(bigSha);
    expect((await runCli(['verify', '--archive', plain])).code).toBe(0);

    await origin.close();
    const again = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=deps', '--archive', copy, '--', 'bash', script, again], { timeoutMs: 120_000 });
    // curl closes at Content-Length, at times before the body's stream ended here: still a hit (respond.ts).
    expect(play.stderr).toMatch(/3 requests, .* 3 hits, 0 misses/);
    expect(play.code).toBe(0);
    for (const f of ['big', 'small', 'index.txt']) expect(`${f} ${sha256(join(again, f))}`).toBe(`${f} ${sha256(join(out, f))}`);
  });

  it('a range of a small LFS body plays back', async () => {
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const got = tmpDir();
    const range = await runCli(['run', '--playback', '--tag=deps', '--archive', archive, '--', 'curl', '-sSf', '-r', '100-199', '-o', join(got, 'range'), `${base}/gen/2000?seed=6`]);
    expect(range.code).toBe(0);
    expect(readFileSync(join(got, 'range')).equals(readFileSync(join(out, 'small')).subarray(100, 200))).toBe(true);
  });

  it('an LFS object that is a directory breaks the transfer off, is set aside as damaged, and verify --repair fetches it again', async () => {
    const copy = join(tmpDir(), 'archive');
    cpSync(archive, copy, { recursive: true });
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const got = tmpDir();
    const url = `${base}/gen/${BIG}?seed=5`;
    // The big body's object is a directory now: nothing to read, no bytes to check.
    rmSync(lfsObject(copy, bigSha));
    mkdirSync(lfsObject(copy, bigSha));
    const big = await runCli(['run', '--playback', '--tag=deps', '--archive', copy, '--', 'curl', '-sS', '-o', join(got, 'big'), url]);
    expect(big.stderr).toMatch(/^curl: \((18|52)\)/m);
    expect(big.stderr).toContain(`btrfly: the body of GET ${url} (sha256 ${bigSha}) is damaged in the archive`);
    expect(big.stderr).toContain('run "btrfly verify --repair deps"');
    expect(big.code).toBe(1);
    expect(existsSync(lfsObject(copy, bigSha))).toBe(false);
    expect((readdirSync(join(copy, 'btrfly', 'damaged'), { recursive: true }) as string[]).map((f) => f.replace(/^[^/]+\//, ''))).toContain(`lfs/${bigSha}`);
    const r = await runCli(['verify', '--repair', '--archive', copy], { timeoutMs: 120_000 });
    expect(r.stdout).toMatch(/^ok: 1 tags, 1 recordings, 3 bodies .* checked, after the repair$/m);
    expect(r.code).toBe(0);
    const again = await runCli(['run', '--playback', '--tag=deps', '--archive', copy, '--', 'curl', '-sS', '-o', join(got, 'big'), url]);
    expect(again.code).toBe(0);
    expect(sha256(join(got, 'big'))).toBe(bigSha);
  });

  it('a damaged LFS object is refused by playback and kept in btrfly/damaged/; verify --repair fetches it (raw and zstd) again from a remote', async () => {
    // The remote's copy may be a hard link to this one: damage() writes a new file.
    damage(lfsObject(archive, bigSha), 1000);
    const damagedBig = sha256(lfsObject(archive, bigSha));
    const played = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=deps', '--archive', archive, '--', 'bash', script, played], { timeoutMs: 120_000 });
    expect(play.stderr).toMatch(new RegExp(`${bigSha}.*btrfly verify --repair`));
    expect(play.code).not.toBe(0);
    expect(existsSync(join(played, 'big')) && sha256(join(played, 'big')) === bigSha).toBe(false);
    // Out of the store, so nothing serves it, but kept: the evidence, as a repair keeps git objects.
    expect(existsSync(lfsObject(archive, bigSha))).toBe(false);
    expect(aside(archive).map((f) => [f.replace(/^btrfly\/damaged\/[^/]+\//, ''), sha256(join(archive, f))])).toEqual([[`lfs/${bigSha}`, damagedBig]]);
    const missing = await runCli(['verify', '--archive', archive]);
    expect(missing.stdout).toMatch(new RegExp(`^deps@[0-9a-f]{7}: body ${bigSha} \\(a Git LFS object\\) is missing from the archive's LFS store: run "btrfly verify --repair"`, 'm'));
    expect(missing.code).toBe(1);

    damage(lfsObject(archive, textOid), 1000);
    const r = await runCli(['verify', '--repair', '--archive', archive], { timeoutMs: 120_000 });
    expect(r.stdout).toMatch(new RegExp(`^deps@[0-9a-f]{7}: body ${textSha} is corrupt: .* it was moved out of the LFS store to btrfly/damaged/[^/]+/lfs/${textOid}: run "btrfly verify --repair"`, 'm'));
    expect(r.stderr).toMatch(/^repair: fetched deps again from hub: 2 of the absent objects came back$/m);
    expect(r.stdout).toMatch(/^ok: 1 tags, 1 recordings, 3 bodies .* checked, after the repair$/m);
    expect(r.code).toBe(0);
    expect(sha256(lfsObject(archive, bigSha))).toBe(bigSha);
    expect(sha256(lfsObject(archive, textOid))).toBe(textOid);
    expect(aside(archive).map((f) => f.replace(/^btrfly\/damaged\/[^/]+\//, '')).sort()).toEqual([`lfs/${bigSha}`, `lfs/${textOid}`].sort());
  });

  it('refuses a pull whose LFS object (raw or zstd) was damaged on the remote; the tag is not created', async () => {
    for (const [body, oid] of [
      [bigSha, bigSha],
      [textSha, textOid],
    ]) {
      const remote = join(tmpDir(), 'bad.git');
      await runOk('git', ['init', '-q', '--bare', remote]);
      await runCli(['remote', 'remove', 'bad', '--archive', archive]);
      await runCli(['remote', 'add', 'bad', remote, '--archive', archive]);
      expect((await runCli(['push', 'bad', '--archive', archive], { timeoutMs: 120_000 })).code).toBe(0);
      damage(lfsObject(remote, oid), 1000);

      const victim = join(tmpDir(), 'victim');
      await runCli(['init', '--lfs', '--archive', victim]);
      await runCli(['remote', 'add', 'bad', remote, '--archive', victim]);
      const pull = await runCli(['pull', 'bad', '--archive', victim], { timeoutMs: 120_000 });
      expect(pull.stderr).toMatch(new RegExp(`^btrfly: pull of tag "deps" from remote bad refused, the tag here is unchanged: .*body ${body} .*git-lfs said: .*hash`, 'm'));
      // The damaged copy is the remote's: a local repair is not the advice.
      expect(pull.stderr).toContain('the copy on remote bad is damaged or missing: pull the tag from another remote');
      expect(pull.stderr).not.toContain('verify --repair');
      expect(pull.code).toBe(1);
      expect((await runCli(['tags', '--archive', victim, '--json'])).stdout).toMatch(/^\[\s*\]/);
      expect(existsSync(lfsObject(victim, oid))).toBe(false);
    }
  });

  it('pushes to an LFS server over HTTPS with basic auth and pulls back through it', async () => {
    const root = tmpDir('btrfly-lfs-host-');
    await runOk('git', ['init', '-q', '--bare', join(root, 'deps.git')]);
    const server = await startGitServer(undefined, '127.0.0.1', root, { auth: { user: 'builder', password: 's3cret' } });
    const url = `https://127.0.0.1:${server.port}/deps.git`;
    const env = gitUser(url, 'builder', 's3cret');
    expect((await runCli(['remote', 'add', 'host', url, '--archive', archive])).code).toBe(0);
    const push = await runCli(['push', 'host', '--archive', archive], { env, timeoutMs: 120_000 });
    expect(push.stderr).not.toMatch(/^btrfly:/m);
    expect(push.code).toBe(0);
    // The body went through the batch API and a basic-transfer PUT, not into git.
    const stats = await server.stats();
    expect(stats.unauthorized).toBeGreaterThan(0);
    expect(stats.requests.some((r) => r.method === 'PUT' && r.url.endsWith(bigSha) && r.requestBytes === BIG)).toBe(true);
    expect(sha256(lfsObject(join(root, 'deps.git'), bigSha))).toBe(bigSha);
    expect(await duBytes(join(root, 'deps.git', 'objects'))).toBeLessThan(256 * 1024);
    // Nothing of the credentials was kept in the archive.
    expect(readFileSync(join(archive, 'config'), 'utf8')).not.toMatch(/s3cret/);

    const copy = join(tmpDir(), 'from-https');
    await runCli(['init', '--lfs', '--archive', copy]);
    await runCli(['remote', 'add', 'host', url, '--archive', copy]);
    const pull = await runCli(['pull', 'host', '--archive', copy], { env, timeoutMs: 120_000 });
    expect(pull.stderr).not.toMatch(/^btrfly:/m);
    expect(pull.code).toBe(0);
    expect(sha256(lfsObject(copy, bigSha))).toBe(bigSha);
    const again = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=deps', '--archive', copy, '--', 'bash', script, again], { timeoutMs: 120_000 });
    expect(play.code).toBe(0);
    expect(sha256(join(again, 'big'))).toBe(bigSha);
    expect(sha256(join(again, 'index.txt'))).toBe(textSha);

    // The server's copy damaged: git-lfs refuses the download, btrfly the tag.
    const path = lfsObject(join(root, 'deps.git'), bigSha);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(path, bytes);
    const victim = join(tmpDir(), 'victim-https');
    await runCli(['init', '--lfs', '--archive', victim]);
    await runCli(['remote', 'add', 'host', url, '--archive', victim]);
    const refused = await runCli(['pull', 'host', '--archive', victim], { env, timeoutMs: 120_000 });
    expect(refused.stderr).toMatch(/^btrfly: pull of tag "deps" from remote host refused, the tag here is unchanged: .*git-lfs said: expected OID [0-9a-f]{64}, got [0-9a-f]{64}/m);
    expect(refused.code).toBe(1);
    expect(existsSync(lfsObject(victim, bigSha))).toBe(false);
  });
});
