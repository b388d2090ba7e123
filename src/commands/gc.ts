import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { objectsDiskUsage } from '../format/archive-report';
import { formatSize } from '../format/size';
import { storageFailure } from '../format/disk-space';
import { isNoSpace } from '../format/lifecycle';
import { gcArchive } from '../format/archive-maintenance';

/** `btrfly gc`: packs the archive and removes what no tag reaches. */
export default class Gc extends BtrflyCommand {
  static override summary = 'Remove what no tag reaches any more';
  static override description =
    'Packs the archive and deletes the recordings and bodies of deleted or re-recorded tags that nothing else uses. ' +
    'Recordings in progress and pending ones are kept; a recording waits while gc runs. ' +
    'Temp files, cache stages and locks left by btrfly processes that died are removed.';
  static override examples = ['<%= config.bin %> gc'];

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Gc);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly gc' });
    this.onTeardown(() => archive.close());
    const before = await objectsDiskUsage(archive);
    await gcArchive(archive).catch(async (e: unknown) => {
      // Repacking writes a new pack of about the git objects' size before it deletes the old ones.
      throw isNoSpace(e) ? await storageFailure(archive.dir, e, (await objectsDiskUsage(archive, { lfs: false })).bytes) : e;
    });
    const after = await objectsDiskUsage(archive);
    const freed = before.bytes - after.bytes;
    if (this.jsonEnabled()) return { before, after, freed };
    this.log(`gc: objects ${formatSize(before.bytes)} in ${before.files} files before, ${formatSize(after.bytes)} in ${after.files} files after; freed ${formatSize(Math.max(0, freed))}`);
  }
}
