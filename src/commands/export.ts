import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { formatSize } from '../format/size';
import { exportRecording, type ExportFormat } from '../format/export';

/** `btrfly export T[@REV] --format har|warc -o FILE`. */
export default class Export extends BtrflyCommand {
  static override summary = 'Write a recording as a HAR or WARC file';
  static override description =
    'HAR 1.2 opens in browser devtools; bodies are inline in base64, as received (a gzip body stays gzip). ' +
    'WARC 1.1 holds a response and a request record per entry. The file is streamed, whatever the size of the bodies. ' +
    '-o - writes to stdout. Without --format, a name ending in .warc means WARC, anything else HAR.';
  static override examples = [
    '<%= config.bin %> export example1 --format har -o example1.har',
    '<%= config.bin %> export example1@1a2b3c4 --format warc -o example1.warc',
  ];
  static override args = { spec: Args.string({ description: 'T or T@REV', required: true }) };
  static override flags = {
    format: Flags.string({ description: 'file format (default: from the file name)', options: ['har', 'warc'] }),
    output: Flags.string({ char: 'o', helpValue: 'FILE', description: 'file to write, or - for stdout', required: true }),
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Export);
    const format = (flags.format ?? (/\.warc$/i.test(flags.output) ? 'warc' : 'har')) as ExportFormat;
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const r = await exportRecording(archive, args.spec, format, flags.output, { creatorVersion: this.config.version });
    if (flags.output === '-') return;
    if (this.jsonEnabled()) return r;
    this.log(`exported ${r.label} (${r.entries} entries, ${formatSize(r.size)}) to ${r.file} as ${format.toUpperCase()}`);
  }
}
