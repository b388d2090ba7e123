import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { describeTransfer, transferFlags, transferOptions } from '../cli/transfer';
import { Archive } from '../format/archive';
import { describeSplit, type PushSplit } from '../format/push-split';
import { pushTags } from '../format/remote';

/** `btrfly push NAME [T...]`: tags and every object they reach, to a git remote. */
export default class Push extends BtrflyCommand {
  static override summary = 'Send tags to a remote';
  static override description =
    'Pushes the named tags (default: every tag) and every recording and body they reach to the remote NAME, with git. ' +
    'Only what the remote lacks is sent. A tag with recordings on the remote that are not here is refused unless --force. ' +
    "Credentials are git's own: ssh keys and agent, credential helpers. " +
    'A remote that refuses a push for its size (a git host\'s push limit, git\'s receive.maxInputSize) still gets the tag: ' +
    'the bodies go first in several pushes under the limit, which is learned and kept (or set with "btrfly remote add --max-push").';
  static override examples = ['<%= config.bin %> push origin', '<%= config.bin %> push origin team/app', '<%= config.bin %> push origin team/app --force'];
  static override usage = '<%= command.id %> REMOTE [TAG...] [FLAGS]';
  static override strict = false;
  static override args = {
    remote: Args.string({ description: 'the remote (see "btrfly remote list")', required: true }),
    tag: Args.string({ description: 'tags to push (default: all)', required: false }),
  };
  static override flags = { ...transferFlags };

  async run(): Promise<JsonResult> {
    const { args, argv, flags } = await this.parse(Push);
    const tags = (argv as string[]).slice(1);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    let split: PushSplit | undefined;
    const signal = this.stopOnSignals(
      `each tag on remote ${args.remote} is as it was or wholly pushed, none half; run "btrfly push ${args.remote}${tags.map((t) => ` ${t}`).join('')}" again`,
    );
    const results = await pushTags(archive, args.remote, tags, { ...transferOptions(flags), onSplit: (s) => (split = s), signal });
    this.stopTakingSignals();
    if (this.jsonEnabled()) return { remote: args.remote, tags: results, ...(split && { split }) };
    for (const r of results) process.stderr.write(describeTransfer(r, 'pushed') + '\n');
    if (split) process.stderr.write(describeSplit(args.remote, split) + '\n');
  }
}
