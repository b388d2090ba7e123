import type { Hook } from '@oclif/core';
import { EXIT } from '../errors';
import { notACommand } from '../cli/unknown-command';
import { usageLine } from '../cli/usage-errors';

/**
 * oclif's `init` hook, for `btrfly recrod --help`: oclif's help would say
 * ` ›   Error: Command recrod not found.`; this says what `btrfly recrod` says (the
 * nearest commands), and for `btrfly tags extra --help` what `btrfly tags extra` says.
 */
const hook: Hook<'init'> = async function ({ id, argv = [], config }) {
  if (!id || id.startsWith('-') || config.findCommand(id) || config.findTopic(id)) return;
  const own = [id, ...argv];
  const end = own.indexOf('--');
  if (!(end === -1 ? own : own.slice(0, end)).includes('--help')) return;
  const words = id.split(':');
  for (let n = words.length - 1; n > 0; n--) {
    const command = config.findCommand(words.slice(0, n).join(':'));
    if (command) {
      const extra = words.slice(n).map((w) => `"${w}"`);
      process.stderr.write(`${config.bin}: unexpected argument${extra.length === 1 ? '' : 's'} ${extra.join(', ')}; usage: ${usageLine(config.bin, command)}\n`);
      return this.exit(EXIT.usage);
    }
  }
  process.stderr.write(`${config.bin}: ${notACommand(words, argv, config.bin, config.commandIDs)}\n`);
  return this.exit(EXIT.usage);
};

export default hook;
