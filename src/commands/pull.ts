import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { describeTransfer, transferFlags, transferOptions } from '../cli/transfer';
import { Archive } from '../format/archive';
import { keepMemoryFlat, noteStreamed } from '../engine/proxy/memory';
import { pullTags } from '../format/remote';

/** `btrfly pull NAME [T...]`: tags from a git remote, every body verified before the tag moves. */
export default class Pull extends BtrflyCommand {
  static override summary = 'Fetch tags from a remote, verifying every body';
  static override description =
    'Fetches the named tags (default: every tag of the remote) with git into a quarantine ref, reads back every body of every new ' +
    'recording against its SHA-256, and only then moves the tag here: a damaged or edited archive cannot put bytes into a build. ' +
    'A tag with new recordings both here and on the remote is refused unless --force. A pulled tag plays back at once.';
  static override examples = ['<%= config.bin %> pull origin', '<%= config.bin %> pull origin team/app', '<%= config.bin %> pull origin team/app --force'];
  static override usage = '<%= command.id %> REMOTE [TAG...] [FLAGS]';
  static override strict = false;
  static override args = {
    remote: Args.string({ description: 'the remote (see "btrfly remote list")', required: true }),
    tag: Args.string({ description: 'tags to pull (default: all)', required: false }),
  };
  static override flags = { ...transferFlags };

  async run(): Promise<JsonResult> {
    const { args, argv, flags } = await this.parse(Pull);
    const tags = (argv as string[]).slice(1);
    const archive = await Archive.open(flags.archive, { create: true, writes: 'btrfly pull' });
    this.onTeardown(() => archive.close());
    // Verifying reads every new body back: the same flat-memory measures as playback.
    keepMemoryFlat();
    const signal = this.stopOnSignals(`the tags not yet verified stay as they were; run "btrfly pull ${args.remote}${tags.map((t) => ` ${t}`).join('')}" again`);
    const results = await pullTags(archive, args.remote, tags, { ...transferOptions(flags), onVerifyRead: noteStreamed, signal });
    if (this.jsonEnabled()) return { remote: args.remote, tags: results };
    if (results.length === 0) process.stderr.write(`remote ${args.remote} has no tags\n`);
    for (const r of results) process.stderr.write(describeTransfer(r, 'pulled') + '\n');
  }
}
