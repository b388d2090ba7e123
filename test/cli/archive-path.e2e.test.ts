/**
 * An `--archive` that cannot be made (under /proc, where Node's recursive mkdir loops for ever;
 * under a symbolic link to nothing; under a file) ends every command at once with one line
 * naming the path and what to do, and a non-zero exit; so does a config directory or a token
 * store under /proc, and an empty `--archive` (exit 2). A record into a read-only archive is
 * refused in one line naming it and what to do; playback still reads it. An `--archive` that is a
 * symbolic link to an empty directory on another file system is made there.
 */
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { CLI_ENTRY, cliEnv, cliWorkDir, registerCleanup, run, runCli, startOrigin, tmpDir } from '../helpers';
import { describeWhen } from '../helpers/when';

const dir = tmpDir('btrfly-archive-path-');
symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
writeFileSync(join(dir, 'a-file'), 'not a directory\n');
const har = join(dir, 'empty.har');
writeFileSync(har, JSON.stringify({ log: { version: '1.2', creator: { name: 't', version: '1' }, entries: [] } }));

const commands: string[][] = [
  ['init'],
  ['init', '--lfs'],
  ['remote', 'add', 'origin', dir],
  ['pull', 'origin'],
  ['import', har, '--tag=t'],
  ['run', '--record', '--tag=t', '--archive', 'ARCHIVE', '--', 'true'],
  ['tags'],
  ['gc'],
  ['verify'],
];
const archives: Array<[string, RegExp]> = [
  ['/proc/btrfly-test/archive', /^btrfly: (cannot create archive \/proc\/btrfly-test\/archive: \/proc\/btrfly-test: its parent \/proc takes no new directory \(ENOENT|no archive at \/proc\/btrfly-test\/archive: )/],
  [join(dir, 'dangling', 'archive'), /^btrfly: (cannot create archive .*\/dangling\/archive: .*\/dangling: it exists and is not a directory|no archive at )/],
  [join(dir, 'a-file', 'archive'), /^btrfly: (cannot create archive .*\/a-file\/archive: a part of the path is not a directory \(ENOTDIR\)|no archive at )/],
];

describe.each(archives)('--archive %s', (archive, said) => {
  it.each(commands.map((c) => [c.filter((a) => a !== 'ARCHIVE' && a !== '--archive').join(' '), c]))('%s ends at once with one line and a non-zero exit', async (_name, argv) => {
    const args = argv as string[];
    const r = await runCli(args.includes('ARCHIVE') ? args.map((a) => (a === 'ARCHIVE' ? archive : a)) : [...args, '--archive', archive], { timeoutMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toMatch(said);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBeGreaterThan(0);
  });
});

test('a config directory under /proc ends at once with one line', async () => {
  const r = await runCli(['ca', 'path'], { env: { BTRFLY_CONFIG_DIR: '/proc/btrfly-test/config' }, timeoutMs: 20_000 });
  expect(r.signal).toBeNull();
  expect(r.stderr).toBe(
    "btrfly: cannot create btrfly's config directory /proc/btrfly-test/config: /proc/btrfly-test: its parent /proc takes no new directory (ENOENT: a file system such as /proc, or a symbolic link to nothing): set BTRFLY_CONFIG_DIR to a directory that can be made\n",
  );
  expect(r.code).toBe(1);
});

test('a token store under /proc ends at once with one line', async () => {
  const r = await runCli(['token', 'create', '--tokens', '/proc/btrfly-test/tokens.json', '--scope', 'record', '--tags', '*'], { timeoutMs: 20_000 });
  expect(r.signal).toBeNull();
  expect(r.stderr).toMatch(/^btrfly: cannot create the token store \/proc\/btrfly-test\/tokens.json: \/proc\/btrfly-test: its parent \/proc takes no new directory .*: pass --tokens a file in a directory that can be made\n$/);
  expect(r.code).toBe(1);
});

describe('an empty --archive', () => {
  it.each([['tags'], ['init'], ['show', 't'], ['gc'], ['run', '--record', '--tag=t', '--archive', '', '--', 'true']])('%s is refused with one line and exit 2', async (...argv) => {
    const r = await runCli(argv.includes('--archive') ? argv : [...argv, '--archive', ''], { timeoutMs: 20_000 });
    expect(r.stderr).toBe("btrfly: --archive is empty: give the archive's directory (default .btrfly, or set BTRFLY_ARCHIVE)\n");
    expect(r.code).toBe(2);
  });
});

const roMissing = [process.getuid?.() === 0 ? '' : 'root', ...['unshare', 'mount'].filter((c) => !onPath(c))].filter(Boolean);

describeWhen(roMissing)('a read-only archive (a read-only bind mount in a mount namespace of the test)', () => {
  /** `btrfly ARGS` in a new mount namespace where `archive` is mounted read-only over itself. */
  const readOnly = (archive: string, args: string[]) =>
    run(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', 'sh', archive, process.execPath, CLI_ENTRY, ...args],
      { cwd: cliWorkDir(), env: cliEnv() },
    );

  it('refuses to record with one line naming it and what to do; it still plays back', async () => {
    const archive = join(tmpDir('btrfly-ro-'), 'archive');
    expect((await runCli(['run', '--record', '--tag=t', '--archive', archive, '--', 'true'])).code).toBe(0);
    const before = await run('git', ['--git-dir', archive, 'for-each-ref']);
    const rec = await readOnly(archive, ['run', '--record', '--tag=t', '--archive', archive, '--', 'true']);
    expect(rec.stderr).toBe(
      `btrfly: cannot record into archive ${archive}: it is on a read-only file system (EROFS): remount it read-write, or record into another archive with --archive DIR (playback reads a read-only archive)\n`,
    );
    expect(rec.code).toBe(1);
    const append = await readOnly(archive, ['run', '--record', '--append', '--tag=t', '--archive', archive, '--', 'true']);
    expect(append.stderr).toBe(rec.stderr);
    const play = await readOnly(archive, ['run', '--playback', '--tag=t', '--archive', archive, '--', 'true']);
    expect(play.stderr).toMatch(/^btrfly: played back tag "t" .*0 misses\n$/);
    expect(play.code).toBe(0);
    expect((await run('git', ['--git-dir', archive, 'for-each-ref'])).stdout).toBe(before.stdout);
  });
});

describe('an --archive that is a symbolic link to an empty directory (.btrfly -> a bigger disk)', () => {
  it('records into the directory it names, on its file system, and plays back through the link', async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    // On another file system than the link when /dev/shm is one (a tmpfs): a repository made beside the link could not be renamed there.
    const shm = existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(tmpdir()).dev;
    const target = shm ? mkdtempSync('/dev/shm/btrfly-archive-target-') : tmpDir('btrfly-archive-target-');
    if (shm) registerCleanup(() => rmSync(target, { recursive: true, force: true }));
    const link = join(tmpDir('btrfly-archive-link-'), '.btrfly');
    symlinkSync(target, link);
    const url = origin.urlFor('/gen/3000?seed=link', 'origin.test');
    const out = join(dir, 'link-body');
    const cmd = ['--archive', link, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sSf', '-o', out, url];
    const rec = await runCli(['run', '--record', '--tag=t', ...cmd]);
    expect(rec.stderr).toContain('1 requests, 1 entries');
    expect(rec.code).toBe(0);
    const recorded = readFileSync(out);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect((await run('git', ['--git-dir', target, 'for-each-ref', '--format=%(refname)'])).stdout).toBe('refs/heads/t\n');
    await origin.close();
    const play = await runCli(['run', '--playback', '--tag=t', ...cmd]);
    expect(play.stderr).toContain('1 hits, 0 misses');
    expect(play.code).toBe(0);
    expect(readFileSync(out).equals(recorded)).toBe(true);
  });
});
