/**
 * Text from a recording (a package name decoded from a URL path, a version, a URL) made safe
 * to print on a terminal or in a pull-request comment: a control character (`%0D%1B[2K`
 * erases the line, `%0A` forges one), a bidi override or an invisible character is written
 * as `\xNN` or `\u{NNNN}`, and `\` as `\\` so that an escape cannot be faked.
 */
import { UNSEEN } from './names';

const ESCAPE = new RegExp(`\\\\|${UNSEEN.source}`, 'gu');

/** @param keepSpaces leave U+0020 as it is (free text such as a commit message, where a space is no trick) */
export function printable(s: string, keepSpaces = false): string {
  return s.replace(ESCAPE, (c) => {
    if (c === '\\') return '\\\\';
    if (keepSpaces && c === ' ') return c;
    const n = c.codePointAt(0)!;
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/** A Markdown code span of `s` (printable): fenced with more backticks than any run inside it, so a backtick shows as itself. */
export function codeSpan(s: string): string {
  const text = printable(s);
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}
