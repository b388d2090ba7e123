/**
 * Tag names and `TAG@REV` specs. A tag is the git branch `refs/heads/<tag>`, so a tag name
 * follows git's check-ref-format rules for a branch (git-check-ref-format(1)); checking
 * them here gives the user a reason instead of a git error later.
 */
import { BtrflyError } from '../errors';

/** A tag and, when pinned, a commit id or prefix of one of its recordings. */
export interface TagSpec {
  tag: string;
  rev?: string;
}

/** Why `name` is not a valid branch name for git, or undefined when it is. */
export function tagNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name === '@') return 'it is "@", which git reads as HEAD';
  if (name === 'HEAD') return 'git reserves "HEAD"';
  if (name.startsWith('-')) return 'it starts with "-"';
  if (name.startsWith('/') || name.endsWith('/')) return 'it starts or ends with "/"';
  if (name.includes('//')) return 'it contains "//"';
  if (name.includes('..')) return 'it contains ".."';
  if (name.includes('@{')) return 'it contains "@{"';
  if (name.endsWith('.')) return 'it ends with "."';
  // eslint-disable-next-line no-control-regex
  const bad = /[\x00-\x20\x7f~^:?*[\\]/.exec(name);
  if (bad) return `it contains ${describeChar(bad[0])}`;
  for (const part of name.split('/')) {
    if (part.startsWith('.')) return `its part "${part}" starts with "."`;
    if (part.endsWith('.lock')) return `its part "${part}" ends with ".lock"`;
  }
  return undefined;
}

function describeChar(c: string): string {
  if (c === ' ') return 'a space';
  const code = c.charCodeAt(0);
  if (code < 0x20 || code === 0x7f) return `the control character 0x${code.toString(16).padStart(2, '0')}`;
  return `"${c}"`;
}

/**
 * Throws unless `name` can be a tag (a git branch name).
 * @throws BtrflyError BAD_TAG_NAME saying why and what to use instead.
 */
export function validateTagName(name: string): string {
  const why = tagNameProblem(name);
  if (why) {
    throw new BtrflyError(
      'BAD_TAG_NAME',
      `tag name ${JSON.stringify(name)} is invalid: ${why}: use letters, digits, "-", "_", "." and "/"`,
      { data: { tag: name } },
    );
  }
  return name;
}

const REV = /^[0-9a-fA-F]{4,64}$/;

/**
 * Splits `TAG@REV` into the tag and the commit id (or prefix, at least 4 hex digits).
 * A tag name may itself contain `@`, so the split is on the last `@` and only when what
 * follows is hex: `node@v20` is a tag, `node@v20@1a2b3c4` is that tag at 1a2b3c4. A tag
 * whose name ends in `@` and 4+ hex digits (`build@2024`) must be pinned to be named
 * (`build@2024@<rev>`), since on its own it reads as tag `build` at rev `2024`.
 * @throws BtrflyError BAD_TAG_NAME when the tag part is not a valid name.
 */
export function parseTagSpec(spec: string): TagSpec {
  const at = spec.lastIndexOf('@');
  if (at > 0 && REV.test(spec.slice(at + 1))) {
    return { tag: validateTagName(spec.slice(0, at)), rev: spec.slice(at + 1).toLowerCase() };
  }
  return { tag: validateTagName(spec) };
}

/** The text form of a spec, as the user would type it. */
export function formatTagSpec(s: TagSpec): string {
  return s.rev ? `${s.tag}@${s.rev}` : s.tag;
}
