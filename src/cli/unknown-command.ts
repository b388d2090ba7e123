import { nearest, orList } from './nearest';

/**
 * What a mistyped word most likely meant, beside the real commands: the seed's words for
 * the two modes, which are flags or arguments here.
 */
const MODE_WORDS: Record<string, string[]> = {
  record: ['run --record', 'start record'],
  playback: ['run --playback', 'start playback'],
};

/**
 * The one line for a first word (or topic and word) that is no command: the nearest
 * commands, or the topic's, or where the list is. `words` is oclif's command id split at
 * `:` (`btrfly ca foo` → `ca`, `foo`), `argv` what followed.
 */
export function notACommand(words: readonly string[], argv: readonly string[], bin: string, commandIds: readonly string[]): string {
  const help = `run "${bin} --help" for the list`;
  const typed = words.join(' ');
  if (typed.startsWith('-')) {
    // `btrfly --archive x tags`: flags go after the command.
    const tokens = [...words, ...argv];
    const at = tokens.findIndex((t) => commandIds.includes(t));
    if (at > 0) return `put the command first, then its flags: ${[bin, tokens[at], ...tokens.slice(0, at), ...tokens.slice(at + 1)].join(' ')}`;
    return `"${typed}" is not a btrfly command: a command comes first, then its flags (${bin} COMMAND ${typed}); ${help}`;
  }
  const [first, ...rest] = words;
  const inTopic = commandIds.filter((c) => c.startsWith(`${first}:`)).map((c) => c.slice(first.length + 1));
  if (inTopic.length && rest.length) {
    const near = nearest(rest[0], inTopic).map((c) => `${bin} ${first} ${c}`);
    const named = `"${first} ${rest[0]}" is not a btrfly command`;
    if (near.length) return `${named}; did you mean ${orList(near)}? (${help})`;
    return `${named}; "${first}" has: ${inTopic.map((c) => `${bin} ${first} ${c}`).join(', ')}`;
  }
  // oclif joins the words after an unknown first word into its id (`shwo x` → `shwo:x`): the first is the command.
  const names = commandIds.map((c) => c.replaceAll(':', ' '));
  const near = nearest(first, [...names, ...Object.keys(MODE_WORDS)]).flatMap((n) => MODE_WORDS[n] ?? [n]);
  const meant = near.length ? `; did you mean ${orList(near.map((n) => `${bin} ${n}`))}?` : '';
  return `"${first}" is not a btrfly command${meant} (${help})`;
}
