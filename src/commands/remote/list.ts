import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { table } from '../../cli/table';
import { Archive } from '../../format/archive';
import { formatSize } from '../../format/size';
import { displayUrl, listRemotes, storedCredentialWarning } from '../../format/remote-config';

/** `btrfly remote list`. */
export default class RemoteList extends BtrflyCommand {
  static override summary = 'List the remotes of the archive';
  static override description = 'One line a remote: its name and URL, and the most one push may carry when set or learned. A remote whose URL an older btrfly stored with a password gets a warning (the password is not shown).';
  static override examples = ['<%= config.bin %> remote list', '<%= config.bin %> remote list --json'];

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(RemoteList);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const stored = await listRemotes(archive);
    for (const r of stored) {
      const warning = storedCredentialWarning(archive, r);
      if (warning) process.stderr.write(`btrfly: warning: ${warning}\n`);
    }
    const remotes = stored.map((r) => ({ ...r, url: displayUrl(r.url) }));
    if (this.jsonEnabled()) return remotes;
    if (remotes.length === 0) {
      process.stderr.write(`no remotes in archive ${flags.archive}: add one with "btrfly remote add NAME URL"\n`);
      return;
    }
    const limits = remotes.some((r) => r.maxPush !== undefined);
    this.log(table(['NAME', 'URL', ...(limits ? ['MAX PUSH'] : [])], remotes.map((r) => [r.name, r.url, ...(limits ? [r.maxPush === undefined ? '-' : formatSize(r.maxPush)] : [])])));
  }
}
