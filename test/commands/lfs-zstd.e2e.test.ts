/**
 * Git LFS mode with a compressible body, as a user runs it: a build downloads a text file, the
 * archive keeps it as a zstd LFS object named by the zstd bytes' own SHA-256 (smaller than the
 * body on disk), the real git-lfs pushes it to a file remote and pulls it into a fresh archive,
 * which verifies it and plays it back byte for byte with the origin gone; a damaged copy on the
 * remote is refused at pull and the tag is not created.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gitFsck, runCli, runOk, startOrigin, tmpDir, type Origin } from '../helpers';

const TEXT = 3_000_000;
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const lfsObject = (repo: string, oid: string): string => join(repo, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);

describe('btrfly init --lfs: a compressible body is a zstd LFS object, pushed and pulled through git-lfs', () => {
  let origin: Origin;
  let archive: string;
  let out: string;
  let script: string;
  let oid: string;
  let textSha: string;

  beforeAll(async () => {
    origin = await startOrigin({ https: true });
    archive = join(tmpDir(), 'archive');
    out = tmpDir();
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    script = join(tmpDir(), 'build.sh');
    // /gz/N without Accept-Encoding: N bytes of plain text, the same on every fetch.
    writeFileSync(script, ['set -eu', 'OUT="$1"', `curl -sSf -o "$OUT/index.txt" "${base}/gz/${TEXT}"`, `curl -sSf -o "$OUT/blob" "${base}/gen/300000?seed=8"`, ''].join('\n'));
  });

  afterAll(async () => {
    await origin?.close().catch(() => undefined);
  });

  it('records the text body as a zstd LFS object smaller than the body, its pointer naming the zstd bytes', async () => {
    expect((await runCli(['init', '--lfs', '--archive', archive])).code).toBe(0);
    const rec = await runCli(['run', '--record', '--tag=deps', '--archive', archive, '--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`, '--', 'bash', script, out], {
      timeoutMs: 120_000,
    });
    expect(rec.stderr).toMatch(/recorded tag "deps"/);
    expect(rec.code).toBe(0);
    expect(statSync(join(out, 'index.txt')).size).toBe(TEXT);
    textSha = sha256(join(out, 'index.txt'));
    const names = (await runOk('git', ['--git-dir', archive, 'ls-tree', '-r', '--name-only', 'refs/heads/deps', `bodies/${textSha.slice(0, 2)}/${textSha}/`])).stdout.trim();
    const m = /\/lfs-([0-9a-f]{64})\.zst$/.exec(names);
    expect(m).not.toBeNull();
    oid = m![1];
    const object = lfsObject(archive, oid);
    expect(sha256(object)).toBe(oid);
    expect(statSync(object).size).toBeLessThan(TEXT / 4);
    // Not stored raw beside it: one copy, the zstd one.
    expect(existsSync(lfsObject(archive, textSha))).toBe(false);
    const pointer = (await runOk('git', ['--git-dir', archive, 'cat-file', 'blob', `refs/heads/deps:${names}`])).stdout;
    expect(pointer).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${statSync(object).size}\n`);
    // The random body stays raw, named by its own SHA-256.
    const blobSha = sha256(join(out, 'blob'));
    expect(sha256(lfsObject(archive, blobSha))).toBe(blobSha);
    expect((await runCli(['verify', '--archive', archive])).stdout).toMatch(/^ok: 1 tags, 1 recordings, 2 bodies/);
    await gitFsck(archive);
  });

  it('pushes to a file remote through git-lfs and pulls into a new archive that verifies and plays back offline', async () => {
    const remote = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', remote]);
    expect((await runCli(['remote', 'add', 'hub', remote, '--archive', archive])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', archive], { timeoutMs: 120_000 });
    expect(push.code).toBe(0);
    expect(sha256(lfsObject(remote, oid))).toBe(oid);
    // git-lfs itself finds the object the pointer names and checks it.
    const fsck = await runOk('git', ['--git-dir', remote, 'lfs', 'fsck', '--objects', 'refs/heads/deps']);
    expect(fsck.stdout).toMatch(/Git LFS fsck OK/);

    const copy = join(tmpDir(), 'copy');
    expect((await runCli(['init', '--lfs', '--archive', copy])).code).toBe(0);
    expect((await runCli(['remote', 'add', 'hub', remote, '--archive', copy])).code).toBe(0);
    const pull = await runCli(['pull', 'hub', '--archive', copy], { timeoutMs: 120_000 });
    expect(pull.stderr).not.toMatch(/^btrfly:/m);
    expect(pull.code).toBe(0);
    expect(sha256(lfsObject(copy, oid))).toBe(oid);
    expect((await runCli(['verify', '--archive', copy])).stdout).toMatch(/^ok: 1 tags, 1 recordings, 2 bodies/);

    // A damaged copy on the remote, under the same name (a new file: git-lfs hard-links a file remote's objects).
    const path = lfsObject(remote, oid);
    const bytes = readFileSync(path);
    bytes[bytes.length >> 1] ^= 1;
    writeFileSync(`${path}.new`, bytes);
    renameSync(`${path}.new`, path);
    const victim = join(tmpDir(), 'victim');
    await runCli(['init', '--lfs', '--archive', victim]);
    await runCli(['remote', 'add', 'hub', remote, '--archive', victim]);
    const refused = await runCli(['pull', 'hub', '--archive', victim], { timeoutMs: 120_000 });
    expect(refused.stderr).toMatch(new RegExp(`^btrfly: pull of tag "deps" from remote hub refused, the tag here is unchanged: .*body ${textSha}`, 'm'));
    expect(refused.code).toBe(1);
    expect((await runCli(['tags', '--archive', victim, '--json'])).stdout).toMatch(/^\[\s*\]/);
    expect(existsSync(lfsObject(victim, oid))).toBe(false);

    await origin.close();
    const again = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=deps', '--archive', copy, '--', 'bash', script, again], { timeoutMs: 120_000 });
    expect(play.stderr).toMatch(/2 hits, 0 misses/);
    expect(play.code).toBe(0);
    for (const f of ['index.txt', 'blob']) expect(`${f} ${sha256(join(again, f))}`).toBe(`${f} ${sha256(join(out, f))}`);
  });
});
