import type { Hook } from '@oclif/core';
import { EXIT } from '../errors';
import { nearest, orList } from '../cli/nearest';

/**
 * What a mistyped word most likely meant, beside the real commands: the seed's words for
 * the two modes, which are flags or arguments here.
 */
const MODE_WORDS: Record<string, string[]> = {
  record: ['run --record', 'start record'],
  playback: ['run --playback', 'start playback'],
};

/**
 * oclif's `command_not_found` hook: `btrfly recrod` gets one line naming the nearest
 * commands and exits 2 (SPEC section 3, bad usage), instead of oclif's ` ›   Error:` block.
 *
 * With a space as topic separator oclif reads `btrfly tags extra` as the command
 * `tags:extra`; that is the command `tags` with an extra argument, and runs as such, so
 * the command itself says which argument it did not expect.
 */
const hook: Hook<'command_not_found'> = async function ({ id, argv = [], config }) {
  const words = id.split(':');
  for (let n = words.length - 1; n > 0; n--) {
    const prefix = words.slice(0, n).join(':');
    if (config.findCommand(prefix)) return config.runCommand(prefix, [...words.slice(n), ...argv]);
  }
  process.stderr.write(`${config.bin}: ${notACommand(words, argv, config.bin, config.commandIDs)}\n`);
  return this.exit(EXIT.usage);
};

/** The one line for a first word (or topic and word) that is no command. */
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

export default hook;
