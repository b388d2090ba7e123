import { CertificateAuthority } from '../../engine/tls/ca';
import { BtrflyCommand, type JsonResult } from '../../cli/base';

/** `btrfly ca path`: where btrfly's CA certificate is (created on first use). */
export default class CaPath extends BtrflyCommand {
  static override summary = 'Print the path of the btrfly CA certificate';
  static override description =
    'The CA is created on first use in $BTRFLY_CONFIG_DIR (default $XDG_CONFIG_HOME/btrfly or ~/.config/btrfly). ' +
    'Trust this certificate to let clients accept the certificates btrfly mints.';
  static override examples = ['<%= config.bin %> ca path', '<%= config.bin %> ca path --json'];

  async run(): Promise<JsonResult> {
    await this.parse(CaPath);
    const ca = await CertificateAuthority.loadOrCreate();
    if (this.jsonEnabled()) return { cert: ca.certPath, key: ca.keyPath, dir: ca.dir };
    this.log(ca.certPath);
  }
}
