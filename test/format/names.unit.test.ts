import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrflyError } from '../../src/errors';
import { MAX_TAG_BYTES, parseTagSpec, tagNameProblem, validateTagName } from '../../src/format/names';

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

describe('tag names git accepts but btrfly refuses', () => {
  /** The one-line message, or '' when the name is accepted. */
  const refusal = (name: string): string => {
    try {
      validateTagName(name);
      return '';
    } catch (e) {
      expect((e as BtrflyError).code).toBe('BAD_TAG_NAME');
      return (e as Error).message;
    }
  };

  it(`caps a name at ${MAX_TAG_BYTES} bytes of UTF-8, and shows a long one cut`, () => {
    expect(refusal('a'.repeat(MAX_TAG_BYTES))).toBe('');
    expect(refusal(`x/${'é'.repeat((MAX_TAG_BYTES - 2) / 2)}`)).toBe('');
    const msg = refusal('a'.repeat(10_000));
    expect(msg).toBe(`tag name "${'a'.repeat(60)}…" is invalid: it is 10000 bytes long, more than ${MAX_TAG_BYTES}: use letters, digits, "-", "_", "." and "/"`);
    // 101 two-byte characters: 202 bytes, though only 101 characters.
    expect(refusal('é'.repeat(101))).toMatch(/it is 202 bytes long, more than 200/);
  });

  it.each([
    ['U+202E right-to-left override', 'release\u202e1v', /U\+202E, a bidirectional-text control/],
    ['U+2066 left-to-right isolate', 'a\u2066b', /U\+2066, a bidirectional-text control/],
    ['U+200F right-to-left mark', 'a\u200fb', /U\+200F, a bidirectional-text control/],
    ['U+200B zero-width space', 'ma\u200bin', /U\+200B, an invisible character/],
    ['U+200D zero-width joiner', 'a\u200db', /U\+200D, an invisible character/],
    ['U+FEFF byte-order mark', '\ufeffmain', /U\+FEFF, an invisible character/],
    ['U+00AD soft hyphen', 'a\u00adb', /U\+00AD, an invisible character/],
    ['U+3164 Hangul filler', 'a\u3164b', /U\+3164, an invisible character/],
    ['U+FE0F variation selector', 'a\ufe0fb', /U\+FE0F, an invisible character/],
    ['U+0085 next line (C1 control)', 'a\u0085b', /U\+0085, an invisible character/],
    ['U+00A0 no-break space', 'a\u00a0b', /U\+00A0, a space character/],
    ['U+3000 ideographic space', 'a\u3000b', /U\+3000, a space character/],
    ['U+E000 private use', 'a\ue000b', /U\+E000, a private-use character/],
  ])('refuses %s, which git accepts', (_, name, why) => {
    expect(gitAcceptsBranch(name)).toBe(true);
    expect(refusal(name)).toMatch(why);
  });

  it('writes the unseen character escaped, so the message itself is not reordered on a terminal', () => {
    const msg = refusal('abc\u202edef');
    expect(msg).toBe('tag name "abc\\u202edef" is invalid: it contains U+202E, a bidirectional-text control that reorders what is shown: use letters, digits, "-", "_", "." and "/"');
    expect(msg).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
  });

  it('keeps letters of every script, combining accents and emoji', () => {
    for (const name of ['日本語/ビルド', 'café', 'cafe\u0301', 'Ελληνικά-1', 'rocket-🚀', 'עברית']) expect(refusal(name)).toBe('');
  });
});

function gitAcceptsBranch(name: string): boolean {
  return spawnSync('git', ['check-ref-format', `refs/heads/${name}`]).status === 0;
}

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
