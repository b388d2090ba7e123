import { asideAdvice, isNoSpace, mibToFree, mountPointOf, noSpaceError, ownedTempName, programName, recordCommitMessage, stripUserinfo, tempOwner } from '../../src/format/lifecycle';
import { BtrflyError } from '../../src/errors';

test('a commit message names the program only, never its arguments', () => {
  expect(recordCommitMessage('app', '/usr/bin/curl', 3)).toBe('record app: 3 entries from curl\n');
  expect(recordCommitMessage('app', 'make', 1)).toBe('record app: 1 entry from make\n');
  expect(recordCommitMessage('app', undefined, 0)).toBe('record app: 0 entries\n');
  expect(programName('user:pass@host')).toBeUndefined();
  expect(programName('TOKEN=abc')).toBeUndefined();
});

test('userinfo is dropped from a URL, the rest kept byte for byte', () => {
  expect(stripUserinfo('http://user:s3cret@host:8080/a/b?x=1#f')).toBe('http://host:8080/a/b?x=1#f');
  expect(stripUserinfo('https://token@host/')).toBe('https://host/');
  expect(stripUserinfo('http://host/path@with-at?q=a@b')).toBe('http://host/path@with-at?q=a@b');
});

test('temp names carry their owner pid', () => {
  expect(tempOwner(ownedTempName(4242, 'abc-0.raw'))).toBe(4242);
  expect(tempOwner('0b1c-uuid-0.raw')).toBeUndefined();
});

test('a full disk is recognised in errno, git messages and causes', () => {
  expect(isNoSpace(Object.assign(new Error('write'), { code: 'ENOSPC' }))).toBe(true);
  expect(isNoSpace(new Error("fatal: sha1 file 'x/tmp_pack_1' write error. Out of diskspace"))).toBe(true);
  expect(isNoSpace(new BtrflyError('STORAGE', 'x', { cause: new Error('No space left on device') }))).toBe(true);
  expect(isNoSpace(new Error('ECONNRESET'))).toBe(false);
});

test('the mount point is the longest mount holding the path', () => {
  const info = ['22 1 8:1 / / rw - ext4 /dev/sda1 rw', '91 22 0:39 / /mnt/ci rw - tmpfs tmpfs rw', '92 22 0:40 / /mnt/c\\040i rw - tmpfs tmpfs rw'].join('\n');
  expect(mountPointOf('/mnt/ci/archive', info)).toBe('/mnt/ci');
  expect(mountPointOf('/mnt/cix/archive', info)).toBe('/');
  expect(mountPointOf('/mnt/c i/a', info)).toBe('/mnt/c i');
});

test('the no-space line says where and how much to free', () => {
  expect(mibToFree(80 * 1024 * 1024, 11 * 1024 * 1024)).toBe(69);
  expect(mibToFree(0, 5)).toBe(1);
  const e = noSpaceError('/mnt/ci', 69);
  expect(e.message).toBe('no space left on /mnt/ci: free 69 MiB or move the archive');
  expect(e.code).toBe('NO_SPACE');
  expect(e.exitCode).toBe(1);
});

test('a recording left aside says why and what to do', () => {
  expect(asideAdvice({ id: 'r1', tag: 'app', entries: 2, started: 'T', exitCode: 7 })).toBe(
    'recording r1 of tag "app" (2 entries, started T) is not the tag: the recorded command failed (exit 7); "btrfly pending seal r1" makes it the tag, "btrfly pending drop r1" drops it',
  );
  expect(asideAdvice({ id: 'r2', tag: 'app', entries: 1, started: 'T', deadPid: 99 })).toContain('it was interrupted (process 99 stopped without sealing it)');
  // run --isolate: leaks held it back, whether or not the command also failed.
  expect(asideAdvice({ id: 'r3', tag: 'app', entries: 3, started: 'T', exitCode: 0, leaks: 1 })).toContain(
    'is not the tag: the recorded command exited 0 but 1 connection btrfly cannot carry (leaks) was refused (it would miss what they fetch);',
  );
  expect(asideAdvice({ id: 'r4', tag: 'app', entries: 3, started: 'T', exitCode: 2, leaks: 2 })).toContain(
    'is not the tag: the recorded command failed (exit 2) and 2 connections btrfly cannot carry (leaks) were refused (it would miss what they fetch);',
  );
});
