import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { tagLog } from '../format/archive-report';
import { formatSize } from '../format/size';
import { validateTagName } from '../format/names';
import { printable } from '../format/printable';

/** `btrfly log T`: the history of a tag, newest recording first. */
export default class Log extends BtrflyCommand {
  static override summary = 'Show the history of a tag, one line a recording';
  static override description =
    'Newest first: the short commit id (use it as T@REV; T@~N is the N-th line after the first), the date, the number of entries and their size, and the recording\'s summary.';
  static override examples = ['<%= config.bin %> log example1', '<%= config.bin %> log example1 --json'];
  static override args = { tag: Args.string({ description: 'tag', required: true }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Log);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const items = await tagLog(archive, validateTagName(args.tag));
    if (this.jsonEnabled()) return items;
    for (const i of items) {
      this.log(`${i.commit.slice(0, 7)}  ${i.date}  ${i.entries} entries, ${formatSize(i.size)}  ${printable(i.summary, true)}`);
    }
  }
}
