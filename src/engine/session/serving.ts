import * as net from 'node:net';
import { oneLine } from '../../errors';
import { Archive } from '../../format/archive';
import { startDnsServer, type DnsServer } from '../dns/dns-server';
import type { Logger } from '../base/log';
import type { ConnectionLimits } from '../base/connection-limit';
import type { ResponseEvent } from '../proxy/proxy-server';
import { Runtime } from './runtime';
import type { UpstreamOptions } from '../proxy/upstream';
import type { CloseOptions } from '../proxy/session';

/** What the host-mode daemon and the service share: an archive, a runtime and a DNS server on one address. */
export interface ServingOptions {
  archiveDir: string;
  /** The address DNS and the proxy listen on, and the one session clients are told for every name. */
  address: string;
  dnsPort: number;
  httpPort: number;
  httpsPort: number;
  proxyPort: number;
  /** Resolvers the DNS server forwards to for clients in no session (record resolves with `upstream.dns`). */
  upstreamDns: string[];
  upstream: UpstreamOptions;
  configDir?: string;
  logger: Logger;
  /** Stops the daemon or the service when it aborts, as SIGTERM does. */
  signal?: AbortSignal;
  onResponse?: (e: ResponseEvent) => void;
  /** Caps on the proxy's open connections (the service's; the daemon's clients are this host). */
  connectionLimits?: ConnectionLimits;
}

export interface Serving {
  archive: Archive;
  runtime: Runtime;
  dns: DnsServer;
  /** Stops DNS and the proxy, seals open recordings (or ends them as `opts` says; logged), closes the archive. */
  close(opts?: CloseOptions): Promise<void>;
}

/**
 * Opens the archive and starts the runtime (proxy: explicit port and transparent 80/443) and
 * the DNS server, which answers the proxy's address to clients in a session and forwards
 * everyone else's questions upstream.
 */
export async function startServing(opts: ServingOptions): Promise<Serving> {
  const archive = await Archive.open(opts.archiveDir, { create: true });
  let runtime: Runtime | undefined;
  let dns: DnsServer | undefined;
  const close = async (how: CloseOptions = {}): Promise<void> => {
    await dns?.close().catch(() => {});
    const results = runtime ? await runtime.close(how).catch((e) => (opts.logger.error({ error: oneLine(e) }, 'closing sessions failed'), [])) : [];
    for (const r of results) opts.logger.info({ tag: r.info.tag, mode: r.info.mode, commit: r.commit, pending: r.interrupted?.id }, 'session closed at shutdown');
    await archive.close();
  };
  try {
    runtime = await Runtime.start({
      archive,
      address: opts.address,
      proxyPort: opts.proxyPort,
      httpPort: opts.httpPort,
      httpsPort: opts.httpsPort,
      upstream: opts.upstream,
      configDir: opts.configDir,
      logger: opts.logger,
      onResponse: opts.onResponse,
      connectionLimits: opts.connectionLimits,
    });
    const sessions = runtime.sessions;
    const dnsLog = opts.logger.child({ component: 'dns' });
    dns = await startDnsServer({
      address: opts.address,
      port: opts.dnsPort,
      answerFor: (client) => (sessions.bySourceAddress(client) ? (net.isIPv6(opts.address) ? { ipv6: opts.address } : { ipv4: opts.address }) : null),
      upstream: opts.upstreamDns,
      log: ({ level, msg, ...data }) => dnsLog[level](data, msg),
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { archive, runtime, dns, close };
}

/**
 * Resolves when the process gets SIGTERM, SIGINT or SIGHUP, or when one of `signals` aborts (the
 * daemon's `/shutdown`, or whoever embeds the daemon or the service).
 */
export function untilShutdown(...signals: Array<AbortSignal | undefined>): Promise<void> {
  const stop = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => stop.abort(sig));
  const either = AbortSignal.any([stop.signal, ...signals.filter((s) => s !== undefined)]);
  return new Promise<void>((resolve) => {
    if (either.aborted) return resolve();
    either.addEventListener('abort', () => resolve(), { once: true });
  });
}
