import { Flags } from '@oclif/core';
import { BtrflyCommand, BtrflyError, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { migrateToLfs } from '../format/lfs-migrate';
import { formatSize } from '../format/size';

/** `btrfly migrate --lfs`: moves a git mode archive's bodies to Git LFS objects. */
export default class Migrate extends BtrflyCommand {
  static override summary = 'Move an archive to Git LFS mode';
  static override description =
    'Copies every body into the Git LFS store (each checked against its SHA-256 on the way) and writes every recording of every tag again ' +
    'with LFS pointer files instead of the bodies: same manifests, authors, dates and messages, but new commit ids, so a remote that has ' +
    'these tags takes them only with "btrfly push --force". The old objects stay until "btrfly gc". Running it again finishes a migration that stopped.';
  static override examples = ['<%= config.bin %> migrate --lfs', '<%= config.bin %> migrate --lfs && btrfly gc'];
  static override flags = {
    lfs: Flags.boolean({ description: 'keep bodies as Git LFS objects (the only migration there is)', default: false }),
  };

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Migrate);
    if (!flags.lfs) throw new BtrflyError('USAGE', 'missing --lfs (the one migration there is: bodies to Git LFS objects); usage: btrfly migrate --lfs');
    const archive = await Archive.open(flags.archive, { writes: 'btrfly migrate' });
    this.onTeardown(() => archive.close());
    const r = await migrateToLfs(archive);
    if (this.jsonEnabled()) return r;
    for (const t of r.tags) {
      this.log(t.from === t.to ? `${t.tag}: already Git LFS (${t.to.slice(0, 7)})` : `${t.tag}: ${t.from.slice(0, 7)} → ${t.to.slice(0, 7)} (${t.recordings} recording${t.recordings === 1 ? '' : 's'} written again)`);
    }
    for (const tag of r.recording) {
      process.stderr.write(`btrfly: note: tag "${tag}" is being recorded by a recording that began before the migration, and keeps its bodies in git: run "btrfly migrate --lfs" again after it ends\n`);
    }
    const moved = r.tags.filter((t) => t.from !== t.to).length;
    this.log(
      `migrated archive ${flags.archive} to Git LFS: ${r.bodies} bodies (${formatSize(r.bytes)}) copied; ` +
        (moved ? `${moved} tag${moved === 1 ? '' : 's'} now ${moved === 1 ? 'has' : 'have'} new commit ids: push them with --force to remotes that had them; run "btrfly gc" to free the old copies` : 'no tag changed'),
    );
  }
}
