import { BtrflyCommand, BtrflyError, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { summarizeTags } from '../format/archive-report';
import { formatSize } from '../format/size';
import { table } from '../cli/table';

/** `btrfly tags`: every tag with its recordings, entries, sizes and last recording date. */
export default class Tags extends BtrflyCommand {
  static override summary = 'List every tag of the archive';
  static override description =
    'One line a tag: the number of recordings in its history, the entries of its newest recording, their total size as received, ' +
    'the bytes on disk of everything the tag reaches (shared bodies count for every tag), and when it was last recorded. ' +
    'A tag whose newest recording is missing or damaged is marked UNREADABLE, with what is wrong and what to do on stderr, and the command exits 1.';
  static override examples = ['<%= config.bin %> tags', '<%= config.bin %> tags --json'];

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Tags);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const tags = await summarizeTags(archive);
    const unreadable = tags.filter((t) => 'error' in t);
    if (tags.length === 0) {
      if (this.jsonEnabled()) return tags;
      process.stderr.write(`no tags in archive ${flags.archive}: record one with "btrfly run --record --tag=T -- CMD"\n`);
      return;
    }
    if (!this.jsonEnabled()) {
      this.log(
        table(
          ['TAG', 'RECORDINGS', 'ENTRIES', 'SIZE', 'STORED', 'LAST RECORDED'],
          tags.map((t) =>
            'error' in t
              ? [t.tag, '?', '?', '?', '?', 'UNREADABLE (see below)']
              : [t.tag, String(t.recordings), String(t.entries), formatSize(t.size), formatSize(t.storedSize), t.lastRecorded],
          ),
          { right: [1, 2, 3, 4] },
        ),
      );
    }
    if (unreadable.length === 0) return tags;
    // Every other tag is listed; the command still fails, so a script sees the damage.
    for (const t of unreadable.slice(0, -1)) if (!this.jsonEnabled()) process.stderr.write(`btrfly: ${t.error}\n`);
    const last = unreadable[unreadable.length - 1];
    throw new BtrflyError('ARCHIVE_INVALID', last.error, { data: { tags } });
  }
}
