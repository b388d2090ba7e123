import { Flags } from '@oclif/core';
import { tokensFlag } from '../../cli/token-flags';
import { defaultTokenStore } from '../../engine/service/service-config';
import { TokenStore, type Scope } from '../../engine/service/tokens';
import { BtrflyCommand, type JsonResult } from '../../cli/base';



export default class TokenCreate extends BtrflyCommand {
  static override summary = 'Create a service token; it is printed once and stored only hashed.';
  static override examples = ["<%= config.bin %> token create --scope record,playback --tags 'team-a/*' --name ci-team-a"];
  static override flags = {
    scope: Flags.string({ description: 'what it may do: record, playback, admin (comma-separated)', required: true }),
    tags: Flags.string({ description: "tag patterns it may touch, comma-separated ('team-a/*', '*')", required: true }),
    name: Flags.string({ description: 'a label shown by "btrfly token list"' }),
    tokens: tokensFlag,
  };

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(TokenCreate);
    const split = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
    const store = new TokenStore(flags.tokens ?? defaultTokenStore());
    const { token, record } = await store.create({ scopes: split(flags.scope) as Scope[], tags: split(flags.tags), name: flags.name });
    if (this.jsonEnabled()) return { token, id: record.id, scopes: record.scopes, tags: record.tags };
    this.log(token);
    process.stderr.write(`btrfly: token ${record.id} (${record.scopes.join(',')} on ${record.tags.join(',')}) created; it is shown only this once\n`);
  }
}
