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

/**
 * The longest tag name, in UTF-8 bytes. git keeps a branch as a file (`refs/heads/<tag>`,
 * and `<tag>.lock` while it moves it), and a file name is at most 255 bytes on the usual
 * file systems: a 10,000-character name failed with ENAMETOOLONG deep in git.
 */
export const MAX_TAG_BYTES = 200;

/**
 * Characters git accepts in a branch name that a reader cannot see or that reorder what is
 * shown around them: controls (C0 and C1), format characters (bidi overrides and isolates,
 * zero-width spaces and joiners, the BOM), default-ignorable code points (Hangul fillers,
 * variation selectors), unpaired surrogates, private use and every kind of space. A tag named
 * with one looks like another tag in `btrfly tags`, a pull request or a review (the
 * "Trojan Source" trick, CVE-2021-42574).
 */
export const UNSEEN = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Z}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;

/** Why `name` is not a valid branch name for git, or undefined when it is. */
export function tagNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_TAG_BYTES) return `it is ${bytes} bytes long, more than ${MAX_TAG_BYTES}`;
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
  const unseen = UNSEEN.exec(name);
  if (unseen) return `it contains ${describeUnseen(unseen[0])}`;
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

function describeUnseen(c: string): string {
  const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  if (/\p{Bidi_Control}/u.test(c)) return `${code}, a bidirectional-text control that reorders what is shown`;
  if (/\p{Z}/u.test(c)) return `${code}, a space character`;
  if (/\p{Co}/u.test(c)) return `${code}, a private-use character no font agrees on`;
  return `${code}, an invisible character`;
}

/**
 * The name as an error message shows it: a long one cut, so that the message stays one
 * readable line, and unseen characters written as `\u202e`, so that the message itself is
 * not reordered on the user's terminal.
 */
function shown(name: string): string {
  const chars = [...name];
  const cut = chars.length > 60 ? `${chars.slice(0, 60).join('')}…` : name;
  return JSON.stringify(cut).replace(new RegExp(UNSEEN.source, 'gu'), (c) => {
    const hex = c.codePointAt(0)!.toString(16);
    return hex.length > 4 ? `\\u{${hex}}` : `\\u${hex.padStart(4, '0')}`;
  });
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
      `tag name ${shown(name)} is invalid: ${why}: use letters, digits, "-", "_", "." and "/"`,
      { data: { tag: [...name].slice(0, 60).join('') } },
    );
  }
  return name;
}

/** A commit id (or a prefix of 4+ hex digits), or `~N`: the N-th recording before the newest (`~` alone is `~1`). */
const REV = /^(?:[0-9a-fA-F]{4,64}|~\d{0,6})$/;

/**
 * Splits `TAG@REV` into the tag and the commit id (or prefix, at least 4 hex digits), or
 * `~N` as in git (`app@~1`: the recording before the newest; `~` cannot be in a tag name).
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
