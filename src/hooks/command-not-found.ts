import type { Hook } from '@oclif/core';
import { EXIT } from '../errors';
import { notACommand } from '../cli/unknown-command';

/**
 * oclif's `command_not_found` hook: `btrfly recrod` gets one line naming the nearest
 * commands and exits 2 (docs/contract.md, "Exit statuses": bad usage), instead of oclif's ` ›   Error:` block.
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

export default hook;
