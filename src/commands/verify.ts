import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult, BtrflyError } from '../cli/base';
import { Archive } from '../format/archive';
import { verifyWithReport } from '../format/archive-report';
import { formatSize } from '../format/size';
import { validateTagName } from '../format/names';

/** `btrfly verify [T...]`: every body of every recording read back and checked. */
export default class Verify extends BtrflyCommand {
  static override summary = 'Check that every body is present and matches its digest';
  static override description =
    'Reads back every body of every recording in the history of the given tags (default: all tags) and checks its size and SHA-256. ' +
    'Prints "ok" with what was checked, or lists each problem and exits 1.';
  static override examples = ['<%= config.bin %> verify', '<%= config.bin %> verify example1 example2'];
  static override strict = false;
  static override args = { tag: Args.string({ description: 'tags to check (default: all)', required: false }) };

  async run(): Promise<JsonResult> {
    const { argv, flags } = await this.parse(Verify);
    const tags = (argv as string[]).map(validateTagName);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const report = await verifyWithReport(archive, tags.length ? tags : undefined);
    const counts = `${report.tags} tags, ${report.recordings} recordings, ${report.bodies} bodies (${formatSize(report.bytes)})`;
    const n = report.problems.length;
    if (n === 0) {
      if (this.jsonEnabled()) return { ok: true, ...report };
      return this.log(`ok: ${counts} checked`);
    }
    // With --json, the error (printed by the base command) carries the whole report.
    if (!this.jsonEnabled()) for (const p of report.problems) this.log(`${p.tag}${p.commit ? `@${p.commit.slice(0, 7)}` : ''}: ${p.message}`);
    throw new BtrflyError('BODY_CORRUPT', `verify found ${n} problem${n === 1 ? '' : 's'} in ${counts}: re-record the tags named above, or pull them again from a good remote`, {
      data: { ok: false, ...report },
    });
  }
}
