import { Flags } from '@oclif/core';
import { writeFile } from 'node:fs/promises';
import { CertificateAuthority } from '../../engine/tls/ca';
import { BtrflyCommand, type JsonResult } from '../../cli/base';

/** `btrfly ca export`: the CA certificate in PEM, for trust stores and CA bundles. */
export default class CaExport extends BtrflyCommand {
  static override summary = 'Print the btrfly CA certificate in PEM';
  static override description = 'Writes the certificate (never the key) to stdout, or to FILE with --output.';
  static override examples = ['<%= config.bin %> ca export > btrfly-ca.pem', '<%= config.bin %> ca export -o btrfly-ca.pem'];
  static override flags = {
    output: Flags.string({ char: 'o', description: 'write the certificate to FILE instead of stdout', helpValue: 'FILE' }),
  };

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(CaExport);
    const ca = await CertificateAuthority.loadOrCreate();
    if (flags.output) await writeFile(flags.output, ca.certPem, { mode: 0o644 });
    if (this.jsonEnabled()) return { cert: ca.certPath, output: flags.output ?? null, pem: ca.certPem };
    if (!flags.output) process.stdout.write(ca.certPem);
  }
}
