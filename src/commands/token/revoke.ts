import { Args } from '@oclif/core';
import { defaultTokenStore } from '../../engine/service/service-config';
import { TokenStore } from '../../engine/service/tokens';
import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { tokensFlag } from '../../cli/token-flags';

export default class TokenRevoke extends BtrflyCommand {
  static override summary = 'Revoke a service token: the service refuses it from its next API call and ends the sessions it opened within 5 s.';
  static override args = { id: Args.string({ description: 'token id (from "btrfly token list")', required: true }) };
  static override flags = { tokens: tokensFlag };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(TokenRevoke);
    const t = await new TokenStore(flags.tokens ?? defaultTokenStore()).revoke(args.id);
    if (this.jsonEnabled()) return { revoked: t.id };
    process.stderr.write(`btrfly: revoked token ${t.id}\n`);
  }
}
