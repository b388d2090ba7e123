import { Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';

/** `btrfly init [--lfs]`: creates an archive. */
export default class Init extends BtrflyCommand {
  static override summary = 'Create an archive';
  static override description =
    'Creates an empty archive (a bare git repository) at --archive (default .btrfly). A record creates one too when none is there; init is needed for --lfs. ' +
    'With --lfs every body is kept once as a Git LFS object (its raw bytes, named by their SHA-256) and the recordings hold LFS pointer files, ' +
    'so push and pull go through git-lfs to the LFS server of any git host (git-lfs must be installed).';
  static override examples = ['<%= config.bin %> init', '<%= config.bin %> init --lfs --archive deps-archive'];
  static override flags = {
    lfs: Flags.boolean({ description: 'keep bodies as Git LFS objects', default: false }),
  };

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Init);
    const archive = await Archive.create(flags.archive, { lfs: flags.lfs });
    this.onTeardown(() => archive.close());
    const mode = flags.lfs ? 'lfs' : 'git';
    if (this.jsonEnabled()) return { archive: archive.dir, mode };
    this.log(`created archive ${flags.archive} (${flags.lfs ? 'bodies as Git LFS objects' : 'bodies in git'})`);
  }
}
