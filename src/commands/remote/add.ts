import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { Archive } from '../../format/archive';
import { parseSize } from '../../format/push-split';
import { addRemote, displayUrl } from '../../format/remote-config';

/** `btrfly remote add NAME URL`. */
export default class RemoteAdd extends BtrflyCommand {
  static override summary = 'Add a git remote to share tags with';
  static override description =
    'URL is a path to another archive or bare git repository, an https:// URL or an ssh:// (or user@host:path) URL. ' +
    "btrfly stores only the URL; git's own credentials (ssh keys and agent, credential helpers) are used when it talks to the remote, " +
    "so a URL with a password or an access token in it is refused: add it without, and give the password to git's credential helper. " +
    'The archive is created when it does not exist yet, so a new host can start with "btrfly remote add" and "btrfly pull". ' +
    'Adding an existing remote again with its URL and --max-push changes its push limit.';
  static override examples = [
    '<%= config.bin %> remote add origin ssh://git@git.example.com/team/deps-archive.git',
    '<%= config.bin %> remote add backup /mnt/shared/btrfly-archive',
  ];
  static override args = {
    name: Args.string({ description: 'a name for the remote, e.g. origin', required: true }),
    url: Args.string({ description: 'where the remote is', required: true }),
  };
  static override flags = {
    'max-push': Flags.string({
      description: 'the most one push to this remote may carry, e.g. "2g" (a git host\'s limit); bigger pushes are sent in parts. Learned on the first refusal when not set',
      helpValue: 'SIZE',
    }),
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(RemoteAdd);
    const archive = await Archive.open(flags.archive, { create: true, writes: 'btrfly remote add' });
    this.onTeardown(() => archive.close());
    const maxPush = flags['max-push'] === undefined ? undefined : parseSize(flags['max-push']);
    const r = await addRemote(archive, args.name, args.url, { maxPush });
    if (this.jsonEnabled()) return { ...r, url: displayUrl(r.url) };
    const limit = maxPush !== undefined ? `, pushes of at most ${flags['max-push']}` : '';
    process.stderr.write(`${r.updated ? 'remote' : 'added remote'} ${r.name}: ${displayUrl(r.url)}${limit}\n`);
  }
}
