/**
 * An `--archive` that cannot be made (under /proc, where Node's recursive mkdir loops for ever;
 * under a symbolic link to nothing; under a file) ends every command at once with one line
 * naming the path and what to do, and a non-zero exit; so does a config directory or a token
 * store under /proc.
 */
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

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
