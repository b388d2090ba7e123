import { Args, Flags } from '@oclif/core';
import { login, readServiceCa } from '../engine/service/service-client';
import { BtrflyCommand, type JsonResult } from '../cli/base';

export default class Login extends BtrflyCommand {
  static override summary = 'Log this build host in to a btrfly service; "btrfly start" then registers sessions there.';
  static override examples = ['<%= config.bin %> login https://btrfly.example:8443 --token btf_... --ca service-ca.pem'];
  static override args = { url: Args.string({ description: "the service's API URL", required: true }) };
  static override flags = {
    token: Flags.string({ description: 'token from "btrfly token create"', env: 'BTRFLY_TOKEN', required: true }),
    ca: Flags.string({ description: "PEM of the CA that signed the API's certificate (the service's \"btrfly ca export\"), when the system does not trust it" }),
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Login);
    const caPem = flags.ca ? await readServiceCa(flags.ca) : undefined;
    const out = await login({ url: args.url, token: flags.token, caPem });
    if (this.jsonEnabled()) return out;
    process.stderr.write(`btrfly: logged in to ${out.url} (${out.scopes.join(',')} on ${out.tags.join(',')}); saved in ${out.file}\n`);
  }
}
