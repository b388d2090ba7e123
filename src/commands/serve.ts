import { Flags } from '@oclif/core';
import { processLogger } from '../engine/base/log';
import { runService } from '../engine/service/service';
import { serveSettings } from '../engine/service/service-config';
import { BtrflyCommand } from '../cli/base';
import { upstreamFlags, upstreamPolicyFlags } from '../cli/upstream-flags';
import { tokensFlag } from '../cli/token-flags';

export default class Serve extends BtrflyCommand {
  static override summary = 'Run the btrfly service: DNS, the proxy, an HTTPS API, the web UI (/ui/) and /metrics for many build hosts.';
  static override description =
    'Build hosts log in ("btrfly login URL --token T") and then "btrfly start record|playback --tag=T" registers a session here: the host\'s source address becomes the session\'s client. Hosts in no session get real DNS answers and are refused by the proxy. SIGTERM seals open recordings. Settings come from flags, else --config FILE (JSON), else defaults.';
  static override examples = [
    '<%= config.bin %> serve --address 10.0.0.5 --archive /srv/btrfly --upstream-dns 1.1.1.1',
    '<%= config.bin %> serve --config /etc/btrfly/serve.json',
  ];
  static override flags = {
    config: Flags.string({ description: 'JSON file of settings (address, dnsPort, apiPort, tokens, upstreamDns, ...); flags win' }),
    address: Flags.string({ description: 'address DNS and the proxy listen on, told to hosts in a session for every name [default: 127.0.0.1]' }),
    'dns-port': Flags.integer({ description: '[default: 53]' }),
    'http-port': Flags.integer({ description: 'transparent HTTP [default: 80]' }),
    'https-port': Flags.integer({ description: 'transparent HTTPS [default: 443]' }),
    'proxy-port': Flags.integer({ description: 'explicit proxy [default: 3128]' }),
    'api-address': Flags.string({ description: 'address of the HTTPS API and /metrics [default: --address]' }),
    'api-port': Flags.integer({ description: '[default: 8443]' }),
    'api-cert': Flags.string({ description: 'PEM certificate of the API [default: a leaf from btrfly\'s CA]', dependsOn: ['api-key'] }),
    'api-key': Flags.string({ description: 'PEM key of --api-cert', dependsOn: ['api-cert'] }),
    tokens: tokensFlag,
    ...upstreamFlags,
    ...upstreamPolicyFlags,
  };

  async run(): Promise<void> {
    const { flags, raw } = await this.parse(Serve);
    const archiveGiven = raw.some((t) => t.type === 'flag' && t.flag === 'archive') || Boolean(process.env.BTRFLY_ARCHIVE);
    const s = await serveSettings(
      {
        archive: archiveGiven ? flags.archive : undefined,
        address: flags.address,
        dnsPort: flags['dns-port'],
        httpPort: flags['http-port'],
        httpsPort: flags['https-port'],
        proxyPort: flags['proxy-port'],
        apiAddress: flags['api-address'],
        apiPort: flags['api-port'],
        apiCert: flags['api-cert'],
        apiKey: flags['api-key'],
        tokens: flags.tokens,
        upstreamDns: flags['upstream-dns'],
        resolve: flags.resolve,
        upstreamCa: flags['upstream-ca'],
        upstreamProxy: flags['upstream-proxy'],
        denyUpstream: flags['deny-upstream'],
        allowUpstream: flags['allow-upstream'],
      },
      flags.config,
    );
    await runService({
      archiveDir: s.archive,
      address: s.address,
      dnsPort: s.dnsPort,
      httpPort: s.httpPort,
      httpsPort: s.httpsPort,
      proxyPort: s.proxyPort,
      apiAddress: s.apiAddress,
      apiPort: s.apiPort,
      apiCert: s.apiCert,
      apiKey: s.apiKey,
      tokenStore: s.tokens,
      upstreamDns: s.upstreamDns,
      upstream: { dns: s.upstreamDns, resolve: s.resolve, caFiles: s.upstreamCa, proxy: s.upstreamProxy, deny: s.denyUpstream, allow: s.allowUpstream },
      logger: processLogger(),
      onReady: (r) =>
        process.stderr.write(
          `btrfly: serving DNS on ${r.address}:${r.dnsPort}, the proxy on ${r.address} (HTTP ${r.httpPort}, HTTPS ${r.httpsPort}, proxy ${r.proxyPort}), ` +
            `the API and the web UI on ${r.api} (tokens: ${s.tokens})\n`,
        ),
    });
  }
}
