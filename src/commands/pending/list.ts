import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { Archive } from '../../format/archive';
import { asideAdvice } from '../../format/lifecycle';

/** `btrfly pending list`: the recordings that are not their tag (failed builds, interrupted records). */
export default class PendingList extends BtrflyCommand {
  static override summary = 'List recordings kept aside: failed builds and interrupted records';
  static override description =
    'A recording whose command failed (or, with run --isolate, leaked), or whose process stopped before sealing it, does not move its tag: it waits here to be sealed ("btrfly pending seal ID") or dropped ("btrfly pending drop ID").';
  static override examples = ['<%= config.bin %> pending list', '<%= config.bin %> pending list --json'];

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(PendingList);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const aside = await archive.asideRecordings();
    if (this.jsonEnabled()) return aside;
    if (aside.length === 0) {
      process.stderr.write('no pending recordings\n');
      return;
    }
    for (const p of aside) this.log(asideAdvice(p));
  }
}
