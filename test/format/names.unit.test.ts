import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrflyError } from '../../src/errors';
import { parseTagSpec, tagNameProblem, validateTagName } from '../../src/format/names';

const NAMES = [
  'example1', 'release/2025-07', 'feature/a.b_c-d', 'node@v20', '@a', 'a@b', 'é-ünïcode', 'a.b', 'x/y/z', 'v1.2.3',
  '', 'HEAD', '-x', 'a..b', 'a/', '/a', 'a//b', 'a.', '.a', 'x/.a', 'a.lock', 'a/b.lock/c', 'a@{b', 'a b', 'a~1',
  'a^', 'a:b', 'a?', 'a*', 'a[b', 'a\\b', 'a\tb', 'a\x7fb', 'a/.', 'a/@/b', 'lock.lock/x', 'a.lockx', '.lock', 'x/-y',
];

describe('validateTagName', () => {
  let cwd: string;
  beforeAll(() => {
    cwd = mkdtempSync(join(tmpdir(), 'btrfly-names-'));
  });
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  /** git's own verdict: a valid branch name, and a valid full ref under refs/heads. */
  function gitAccepts(name: string): boolean {
    const env = { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir() };
    const branch = spawnSync('git', ['check-ref-format', '--branch', name], { cwd, env });
    const ref = spawnSync('git', ['check-ref-format', `refs/heads/${name}`], { cwd, env });
    return branch.status === 0 && ref.status === 0;
  }

  it.each(NAMES.map((n) => [JSON.stringify(n), n]))('agrees with git check-ref-format on %s', (_, name) => {
    expect(tagNameProblem(name) === undefined).toBe(gitAccepts(name));
  });

  it('is stricter than git on "@" alone, which git reads as HEAD in a repository', () => {
    expect(gitAccepts('@')).toBe(true);
    expect(tagNameProblem('@')).toMatch(/HEAD/);
  });

  it('explains the problem in one line, with what to use instead', () => {
    try {
      validateTagName('release..1');
      throw new Error('not thrown');
    } catch (e) {
      expect(e).toBeInstanceOf(BtrflyError);
      expect((e as BtrflyError).code).toBe('BAD_TAG_NAME');
      expect((e as BtrflyError).exitCode).toBe(2);
      expect((e as BtrflyError).message).toBe(
        'tag name "release..1" is invalid: it contains "..": use letters, digits, "-", "_", "." and "/"',
      );
    }
    expect(() => validateTagName('a\nb')).toThrow(/the control character 0x0a/);
    expect(() => validateTagName('a b')).toThrow(/it contains a space/);
    expect(() => validateTagName('x/.hidden')).toThrow(/its part ".hidden" starts with "."/);
  });
});

describe('parseTagSpec', () => {
  it.each([
    ['example1', { tag: 'example1' }],
    ['example1@1a2b3c4', { tag: 'example1', rev: '1a2b3c4' }],
    ['example1@1A2B', { tag: 'example1', rev: '1a2b' }],
    ['node@v20', { tag: 'node@v20' }],
    ['node@v20@deadbeef', { tag: 'node@v20', rev: 'deadbeef' }],
    ['x@abc', { tag: 'x@abc' }],
    ['x@' + 'f'.repeat(40), { tag: 'x', rev: 'f'.repeat(40) }],
    ['@a', { tag: '@a' }],
  ])('%s', (spec, want) => {
    expect(parseTagSpec(spec)).toEqual(want);
  });

  it('rejects an invalid tag part', () => {
    expect(() => parseTagSpec('a..b@1234')).toThrow(/tag name "a..b" is invalid/);
    expect(() => parseTagSpec('@')).toThrow(/tag name "@" is invalid/);
    // Nothing before the "@": the whole is a (valid) tag name, not an empty tag at a rev.
    expect(parseTagSpec('@1234')).toEqual({ tag: '@1234' });
  });
});
