import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { importHar } from '../format/importer';
import { Archive } from '../format/archive';
import { printable } from '../format/printable';
import { redactKey } from '../engine/base/redact-key';

/** `btrfly import FILE --tag=T`: a HAR file as a new recording of a tag. */
export default class Import extends BtrflyCommand {
  static override summary = 'Import a HAR file as a recording of a tag';
  static override description =
    'Each entry of the HAR (from browser devtools, or from "btrfly export") becomes an entry of one new recording of T, ' +
    'its body stored like a recorded one. Entries that succeeded but whose body the HAR does not hold are skipped and listed.';
  static override examples = ['<%= config.bin %> import session.har --tag=from-browser', '<%= config.bin %> import more.har --tag=from-browser --append'];
  static override args = { file: Args.string({ description: 'HAR file', required: true }) };
  static override flags = {
    tag: Flags.string({ description: 'tag to write', required: true }),
    append: Flags.boolean({ description: 'keep the tag\'s previous entries and add to them', default: false }),
    redact: Flags.string({ description: 'request header to store as [redacted] (Authorization, Cookie and Proxy-Authorization always are)', multiple: true }),
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Import);
    const archive = await Archive.open(flags.archive, { create: true, writes: 'btrfly import' });
    this.onTeardown(() => archive.close());
    const r = await importHar(archive, args.file, flags.tag, { append: flags.append, redactHeaders: flags.redact, redactKey: () => redactKey() });
    if (this.jsonEnabled()) return r;
    for (const s of r.skipped) process.stderr.write(`skipped ${printable(s.method)} ${printable(s.url)}: ${s.reason}\n`);
    this.log(`imported ${r.entries} entries into tag ${r.tag} (${r.commit.slice(0, 7)})`);
  }
}
