/**
 * Bench section "dns": dnsperf against btrfly's DNS server (startDnsServer) for a client in a
 * session, which is answered locally with the proxy's address (no upstream query). The
 * server runs in a child process of its own (dns-child.ts) so that nothing else shares its
 * event loop.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

const CHILD = join(__dirname, 'dns-child.js');

interface PerfResult {
  qps: number;
  lost: number;
  sent: number;
  avgMs: number;
  maxMs: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Parses dnsperf's output. Its summary has no percentiles (2.10), so they come from the
 * per-query lines `-v` prints (`> NOERROR NAME TYPE SECONDS`; a lost query has no latency).
 */
export function parseDnsperf(out: string): PerfResult {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const latencies = Float64Array.from(out.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm), (m) => Number(m[1]) * 1000).sort();
  const pct = (p: number): number => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] : NaN);
  return {
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    qps: num(/Queries per second:\s+([\d.]+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    maxMs: num(/Average Latency \(s\):\s+[\d.]+ \(min [\d.]+, max ([\d.]+)\)/) * 1000,
  };
}

export const dnsSection: BenchSection = {
  name: 'dns',
  async run(opts: BenchOptions): Promise<string> {
    const seconds = Number(opts.flags.get('seconds') ?? 10);
    const dir = opts.workDir;
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const queries = join(dir, 'queries.txt');
    // Distinct names, A and AAAA, as a build's resolver would ask them.
    const lines: string[] = [];
    for (let i = 0; i < 10000; i++) lines.push(`pkg-${i.toString(36)}.registry.test ${i % 4 === 3 ? 'AAAA' : 'A'}`);
    await writeFile(queries, lines.join('\n') + '\n');
    const server = spawn(process.execPath, [CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
    const rl = createInterface({ input: server.stdout! });
    const [first] = (await once(rl, 'line')) as [string];
    const port = Number(first);
    const results: PerfResult[] = [];
    // -v: a line per query with its latency, for the percentiles (it did not lower the rate here: 87,815–90,980 q/s with it, 81,469–88,723 without).
    const args = ['-s', '127.0.0.1', '-p', String(port), '-d', queries, '-l', String(seconds), '-c', '4', '-q', '200', '-v'];
    try {
      for (let i = 0; i < opts.runs; i++) {
        const r = parseDnsperf((await timed('dnsperf', args)).stdout);
        results.push(r);
        log(`dns run ${i + 1}: ${r.qps.toFixed(0)} q/s, ${r.lost} lost, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`);
      }
    } finally {
      server.kill('SIGTERM');
      await once(server, 'exit').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
    const f = (k: keyof PerfResult, d: number): string => fmtSpread(spread(results.map((r) => r[k] as number)), d);
    const qps = spread(results.map((r) => r.qps));
    return joinLines([
      '## DNS',
      '',
      `dnsperf ${seconds} s over UDP against btrfly's DNS server (\`startDnsServer\`, alone in its own Node process), queried by a client`,
      'in a session (so every A/AAAA name is answered locally with the proxy address, never forwarded), 10,000 distinct names,',
      `4 dnsperf clients with up to 200 queries outstanding. Median of ${opts.runs} runs (min–max).`,
      'dnsperf 2.10 prints no percentiles: p50 and p99 are computed from the latency of every answered query, which `-v` prints.',
      '',
      '| queries/s | target | ratio to target | lost | p50 latency ms | p99 latency ms | average ms | max ms | reproduce |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      `| ${f('qps', 0)} | ≥ 20,000 | **${(qps.median / 20000).toFixed(2)}×** | ${f('lost', 0)} | ${f('p50Ms', 2)} | ${f('p99Ms', 2)} | ${f('avgMs', 2)} | ${f('maxMs', 1)} | \`npm run bench -- dns --seconds ${seconds} --runs ${opts.runs}\` / \`dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l ${seconds} -c 4 -q 200 -v\` |`,
      '',
      takenLine(before),
    ]);
  },
};
