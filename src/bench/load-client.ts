/**
 * The small-file load generator: N keep-alive HTTPS clients, each with one connection, share
 * a list of URLs and fetch each once, in order, as fast as they are answered. Prints one
 * JSON line: requests, seconds, requests/s, p50 and p99 latency (ms), bytes.
 *   node load-client.js URLS_FILE CONCURRENCY [--proxy URL] [--resolve-to ADDR] [--repeat N]
 * With --proxy (or HTTPS_PROXY in the environment, as `btrfly run` sets it) every client
 * tunnels through the proxy with CONNECT; otherwise it connects to --resolve-to (default
 * 127.0.0.1) whatever the URL's name, as `curl --resolve` does. Extra trust comes from
 * NODE_EXTRA_CA_CERTS. Any answer but a 200 with the announced length is an error (exit 1).
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { HttpsProxyAgent } from 'https-proxy-agent';

interface Args {
  urls: string[];
  concurrency: number;
  proxy?: string;
  resolveTo: string;
  repeat: number;
}

function parse(argv: string[]): Args {
  const [file, conc, ...rest] = argv;
  const opt = (name: string): string | undefined => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  return {
    urls: readFileSync(file, 'utf8').split('\n').filter(Boolean),
    concurrency: Number(conc),
    proxy: opt('proxy') ?? process.env.HTTPS_PROXY,
    resolveTo: opt('resolve-to') ?? '127.0.0.1',
    repeat: Number(opt('repeat') ?? 1),
  };
}

/** Requests that went out on a connection opened for them (not reused from the keep-alive pool). */
let fresh = 0;

function get(url: string, agent: https.Agent, lookup: LookupFunction | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, lookup }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => {
        const want = Number(res.headers['content-length'] ?? bytes);
        if (res.statusCode !== 200 || bytes !== want) reject(new Error(`${url}: ${res.statusCode}, ${bytes} of ${want} bytes`));
        else resolve(bytes);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('socket', () => void (req.reusedSocket || fresh++));
  });
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const lookup: LookupFunction | undefined = a.proxy
    ? undefined
    : (_host, options, cb) => {
        if (options.all) (cb as unknown as (e: null, addrs: Array<{ address: string; family: number }>) => void)(null, [{ address: a.resolveTo, family: 4 }]);
        else cb(null, a.resolveTo, 4);
      };
  const queue = Array.from({ length: a.repeat }, () => a.urls).flat();
  const latencies: number[] = [];
  let next = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  const client = async (): Promise<void> => {
    const agent = a.proxy ? new HttpsProxyAgent(a.proxy, { keepAlive: true, maxSockets: 1 }) : new https.Agent({ keepAlive: true, maxSockets: 1 });
    while (next < queue.length) {
      const url = queue[next++];
      const s = process.hrtime.bigint();
      bytes += await get(url, agent, lookup);
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: a.concurrency }, client));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  latencies.sort((x, y) => x - y);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))];
  process.stdout.write(JSON.stringify({ requests: queue.length, seconds, rps: queue.length / seconds, p50ms: pct(50), p99ms: pct(99), bytes, connections: fresh }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`load-client: ${(e as Error).message}\n`);
  process.exit(1);
});
