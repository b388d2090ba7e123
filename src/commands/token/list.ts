import { defaultTokenStore } from '../../engine/service/service-config';
import { TokenStore } from '../../engine/service/tokens';
import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { tokensFlag } from '../../cli/token-flags';
import { printable } from '../../format/printable';

export default class TokenList extends BtrflyCommand {
  static override summary = 'List the service tokens (id, scopes, tags, created; never the secret).';
  static override flags = { tokens: tokensFlag };

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(TokenList);
    const list = (await new TokenStore(flags.tokens ?? defaultTokenStore()).list()).map(({ hash: _hash, ...rest }) => rest);
    if (this.jsonEnabled()) return list;
    if (list.length === 0) return this.log('no tokens ("btrfly token create" makes one)');
    // A store written by hand (or by an older btrfly) may hold a name or pattern that would drive the terminal.
    for (const t of list) this.log(`${t.id}  ${t.scopes.join(',').padEnd(16)} ${printable(t.tags.join(',')).padEnd(20)} ${t.created}${t.name ? `  ${printable(t.name, true)}` : ''}`);
  }
}
