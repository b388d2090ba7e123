import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { table } from '../cli/table';
import { Archive } from '../format/archive';
import { loadRecording, recordingSize } from '../format/archive-report';
import { formatSize } from '../format/size';
import { compareEntries } from '../format/manifest';
import { printable } from '../format/printable';

/** `btrfly show T[@REV]`: the entries of one recording. */
export default class Show extends BtrflyCommand {
  static override summary = 'List the entries of a recording';
  static override description =
    'One line an entry: method, status, size as received, the first 12 hex digits of the body\'s SHA-256, and the URL ' +
    '(with #N for the N-th different answer to a repeated request). T is the tag\'s newest recording; T@REV pins one by its commit id. ' +
    'With --json, the full manifest entries.';
  static override examples = ['<%= config.bin %> show example1', '<%= config.bin %> show example1@1a2b3c4 --json'];
  static override args = { spec: Args.string({ description: 'T or T@REV', required: true }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Show);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const { rec, label, date } = await loadRecording(archive, args.spec);
    const entries = [...rec.manifest.entries].sort(compareEntries);
    if (this.jsonEnabled()) {
      return { tag: rec.tag, commit: rec.commit, date: date.toISOString(), rules: rec.manifest.rules, redact: rec.manifest.redact, entries };
    }
    this.log(`${label}  ${date.toISOString()}  ${entries.length} entries, ${formatSize(recordingSize(rec))}`);
    if (entries.length === 0) return;
    this.log(
      table(
        ['METHOD', 'STATUS', 'SIZE', 'SHA256', 'URL'],
        entries.map((e) => [
          printable(e.request.method),
          String(e.response.status),
          formatSize(e.response.content.size),
          e.response.content.sha256.slice(0, 12),
          printable(e.request.url) + (e.ordinal ? ` #${e.ordinal}` : ''),
        ]),
        { right: [2] },
      ),
    );
  }
}
