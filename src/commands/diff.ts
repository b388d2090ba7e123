import { Args, Flags } from '@oclif/core';
import { BtrflyCommand } from '../cli/base';
import { Archive } from '../format/archive';
import { loadRecording } from '../format/archive-report';
import { diffManifests, renderDiffJson, renderDiffMarkdown, renderDiffText } from '../format/diff';

/** `btrfly diff A B`: packages added, removed, upgraded, downgraded, changed or from another source; metadata counted; other URLs. */
export default class Diff extends BtrflyCommand {
  static override summary = 'Show the packages and URLs added, removed and changed between two recordings';
  static override description =
    'A and B are T or T@REV, REV a commit id from "btrfly log" or ~N (N recordings back), e.g. "btrfly diff mytag@~1 mytag" compares the recording before the newest with it. ' +
    'Entries are compared by method, URL and ordinal; a change is a different status, body, redirect target (Location), Content-Type or Content-Encoding. ' +
    '--format markdown prints a pull-request comment.';
  static override examples = [
    '<%= config.bin %> diff example1@1a2b3c4 example1',
    '<%= config.bin %> diff example1@~1 example1',
    '<%= config.bin %> diff example1 example2 --format markdown',
    '<%= config.bin %> diff example1@1a2b3c4 example1 --all',
  ];
  static override args = {
    from: Args.string({ description: 'the older recording, T or T@REV', required: true }),
    to: Args.string({ description: 'the newer recording, T or T@REV', required: true }),
  };
  static override flags = {
    format: Flags.string({ description: 'output format', options: ['text', 'markdown', 'json'], default: 'text' }),
    all: Flags.boolean({ description: 'also list the metadata documents refreshed, new and gone, not only count them' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Diff);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const a = await loadRecording(archive, args.from);
    const b = await loadRecording(archive, args.to);
    const d = diffManifests(a.rec.manifest, b.rec.manifest);
    const labels = { from: a.label, to: b.label };
    const format = flags.json ? 'json' : flags.format;
    const render = format === 'json' ? renderDiffJson : format === 'markdown' ? renderDiffMarkdown : renderDiffText;
    process.stdout.write(render(d, labels, { all: flags.all }));
  }
}
