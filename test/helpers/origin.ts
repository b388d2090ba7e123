import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { stopChild, type Netns } from './netns';
import { askChild, readReadyLine, stderrTail } from './server-process';
import { DEFAULT_CERT_NAMES, testCa } from './test-ca';
import { startOriginServer, type OriginStats } from '../fixtures/origin-server';

export type { OriginStats, OriginRequest } from '../fixtures/origin-server';
export { genBodyStream, genBodySha256 } from '../fixtures/gen-body';

/** The plain-JS server behind every origin; see its header for the routes it serves. */
export const ORIGIN_SERVER_SCRIPT = join(__dirname, '..', 'fixtures', 'origin-server.js');

/** Options of {@link startOrigin}. */
export interface OriginOptions {
  /** Serve HTTPS with a certificate from the test CA (see {@link Origin.caPath}). */
  https?: boolean;
  /** Names and IP literals in the certificate; default the test names, loopback and `host`. */
  names?: readonly string[];
  /** Directory served under `/files/`; default `test/fixtures/origin-files`. */
  dir?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Run the origin as a process inside this namespace (then `host` is one of its addresses). */
  netns?: Netns;
  /**
   * What it serves: `files` (default, the routes of origin-server.js), or a package origin
   * for real build tools: `pypi` (a Python index for `pypi.test`) or `npm` (a registry for
   * `registry.test`), see test/fixtures/package-index.js.
   */
  kind?: 'files' | 'pypi' | 'npm';
  /** Run the origin as a separate `node` process even without a namespace. */
  spawn?: boolean;
}

/** A running test origin. */
export interface Origin {
  host: string;
  port: number;
  /** Port of the uncounted control server (`GET /__stats`, `POST /__reset`) on `host`. */
  controlPort: number;
  https: boolean;
  /** `http(s)://host:port`, by address. */
  url: string;
  /** The test CA's certificate for clients to trust (`curl --cacert`); set when `https`. */
  caPath: string | undefined;
  /**
   * The URL of `path` under a host name instead of the address, e.g.
   * `urlFor('/gen/10', 'cdn.test')` → `https://cdn.test:PORT/gen/10`. The client must resolve
   * the name to {@link Origin.host} itself (`curl --resolve`, btrfly's `--resolve`).
   */
  urlFor(path: string, name?: string): string;
  /** What the origin has served: use it to assert that playback asked it nothing. */
  stats(): Promise<OriginStats>;
  /** Forgets the requests counted so far. */
  resetStats(): Promise<void>;
  /** Stops the origin and drops keep-alive connections. Idempotent; also run at afterAll. */
  close(): Promise<void>;
}

/**
 * Starts a test origin on port 0 of `host` (default 127.0.0.1). In this process by
 * default; as a child process with `spawn`, and inside a namespace with `netns`.
 *
 * ```ts
 * const origin = await startOrigin({ https: true });
 * await run('curl', ['--cacert', origin.caPath!, `${origin.url}/gen/1048576?seed=7`]);
 * expect((await origin.stats()).total).toBe(1);
 * ```
 */
export async function startOrigin(options: OriginOptions = {}): Promise<Origin> {
  const host = options.host ?? '127.0.0.1';
  const tls = options.https ? tlsFor(host, options.names) : undefined;
  const started = options.netns || options.spawn
    ? await spawnOrigin(host, options, tls)
    : await inProcessOrigin(host, options, tls);
  const scheme = options.https ? 'https' : 'http';
  const hostInUrl = isIP(host) === 6 ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  const origin: Origin = {
    host,
    port: started.port,
    controlPort: started.controlPort,
    https: Boolean(options.https),
    url: `${scheme}://${hostInUrl}:${started.port}`,
    caPath: tls ? testCa().caPath : undefined,
    urlFor: (path, name) => `${scheme}://${name ?? hostInUrl}:${started.port}${path.startsWith('/') ? '' : '/'}${path}`,
    stats: started.stats,
    resetStats: started.reset,
    close: () => (closing ??= started.close().finally(unregister)),
  };
  const unregister = registerCleanup(origin.close);
  return origin;
}

interface Started {
  port: number;
  controlPort: number;
  stats(): Promise<OriginStats>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

interface Tls {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

function tlsFor(host: string, names?: readonly string[]): Tls {
  const all = names ?? [...new Set([...DEFAULT_CERT_NAMES, host])];
  return testCa().issue(all);
}

async function inProcessOrigin(host: string, options: OriginOptions, tls?: Tls): Promise<Started> {
  const server = await startOriginServer({ host, dir: options.dir, kind: options.kind, cert: tls?.certPem, key: tls?.keyPem });
  return {
    port: server.port,
    controlPort: server.controlPort,
    stats: async () => server.stats(),
    reset: async () => server.reset(),
    close: () => server.close(),
  };
}

async function spawnOrigin(host: string, options: OriginOptions, tls?: Tls): Promise<Started> {
  const args = [ORIGIN_SERVER_SCRIPT, '--host', host];
  if (options.dir) args.push('--dir', options.dir);
  if (options.kind) args.push('--kind', options.kind);
  if (tls) args.push('--cert', tls.certPath, '--key', tls.keyPath);
  const stdio: ['ignore', 'pipe', 'pipe', 'ipc'] = ['ignore', 'pipe', 'pipe', 'ipc'];
  const child = options.netns
    ? options.netns.spawn(process.execPath, args, { stdio })
    : spawn(process.execPath, args, { stdio });
  const ready = await readReadyLine<{ port: number; controlPort: number }>(child, stderrTail(child));
  const ask = askChild<{ stats?: OriginStats }>(child);
  return {
    port: ready.port,
    controlPort: ready.controlPort,
    stats: async () => (await ask('stats')).stats as OriginStats,
    reset: async () => void (await ask('reset')),
    close: () => stopChild(child),
  };
}
