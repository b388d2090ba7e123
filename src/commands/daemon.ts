import { Flags } from '@oclif/core';
import { runDaemon } from '../engine/host/daemon';
import { processLogger } from '../engine/base/log';
import { detectHostPaths } from '../engine/host/config';
import { DAEMON_UPSTREAM_PROXY_ENV } from '../engine/host/daemon-client';
import { BtrflyCommand } from '../cli/base';
import { upstreamFlags, upstreamOptions } from '../cli/upstream-flags';

export default class Daemon extends BtrflyCommand {
  static override hidden = true;
  static override summary = 'Run the host-mode daemon in the foreground (started by "btrfly start").';
  static override flags = {
    address: Flags.string({ description: 'loopback address for DNS and the proxy', default: '127.77.0.1' }),
    'dns-port': Flags.integer({ default: 53 }),
    'http-port': Flags.integer({ default: 80 }),
    'https-port': Flags.integer({ default: 443 }),
    'proxy-port': Flags.integer({ default: 3128 }),
    ...upstreamFlags,
    'upstream-proxy': Flags.string({ description: 'send upstream traffic through this HTTP proxy URL (btrfly start passes it in the environment)', env: DAEMON_UPSTREAM_PROXY_ENV }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Daemon);
    await runDaemon({
      archiveDir: flags.archive,
      address: flags.address,
      dnsPort: flags['dns-port'],
      httpPort: flags['http-port'],
      httpsPort: flags['https-port'],
      proxyPort: flags['proxy-port'],
      upstreamDns: flags['upstream-dns'] ?? [],
      upstream: { ...upstreamOptions(flags), dns: flags['upstream-dns'] },
      stateDir: detectHostPaths().stateDir,
      logger: processLogger(),
    });
  }
}
