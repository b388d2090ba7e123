/**
 * The host-mode daemon as `btrfly start` spawns it: what the hidden `btrfly daemon` command runs,
 * without oclif, whose loading and command lookup were a fifth of a second of every start under
 * load (docs/decisions.md, "Host mode start/stop"). It takes the flags `btrfly daemon` takes;
 * `btrfly daemon` remains, to run the daemon by hand.
 */
import { parseArgs } from 'node:util';
import { isBtrflyError, oneLine, EXIT } from '../errors';
import { processLogger } from '../engine/base/log';
import { runDaemon } from '../engine/host/daemon';
import { detectHostPaths } from '../engine/host/config/detect';
import { DAEMON_UPSTREAM_PROXY_ENV } from '../engine/host/daemon-client';

/**
 * Set by the spawner when it added glibc's mmap threshold for this process (as bin/run.js does
 * for the streaming commands): glibc has read it by now, and no child may inherit it.
 */
export const MALLOC_MARK = 'BTRFLY_MALLOC_TUNED';

async function main(argv: string[]): Promise<void> {
  if (process.env[MALLOC_MARK] === 'added') delete process.env.MALLOC_MMAP_THRESHOLD_;
  delete process.env[MALLOC_MARK];
  // `btrfly start` passes the upstream proxy (it may hold a password) here, not on the command line.
  const envProxy = process.env[DAEMON_UPSTREAM_PROXY_ENV];
  delete process.env[DAEMON_UPSTREAM_PROXY_ENV];
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      archive: { type: 'string', default: '.btrfly' },
      address: { type: 'string', default: '127.77.0.1' },
      'dns-port': { type: 'string', default: '53' },
      'http-port': { type: 'string', default: '80' },
      'https-port': { type: 'string', default: '443' },
      'proxy-port': { type: 'string', default: '3128' },
      'upstream-dns': { type: 'string', multiple: true },
      resolve: { type: 'string', multiple: true },
      'upstream-ca': { type: 'string', multiple: true },
      'upstream-proxy': { type: 'string' },
    },
  });
  await runDaemon({
    archiveDir: v.archive,
    address: v.address,
    dnsPort: Number(v['dns-port']),
    httpPort: Number(v['http-port']),
    httpsPort: Number(v['https-port']),
    proxyPort: Number(v['proxy-port']),
    upstreamDns: v['upstream-dns'] ?? [],
    upstream: { dns: v['upstream-dns'], resolve: v.resolve, caFiles: v['upstream-ca'], proxy: v['upstream-proxy'] ?? envProxy },
    stateDir: detectHostPaths().stateDir,
    logger: processLogger(),
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    // One line, as every btrfly command ends on an error: `btrfly start` quotes the log's last line.
    process.stderr.write(`btrfly: ${oneLine(e)}\n`);
    process.exit(isBtrflyError(e) ? e.exitCode : EXIT.failure);
  });
}
