/**
 * Bench section "connections": what a new HTTPS connection costs, one curl process per fetch
 * (as a build that runs `curl` per file pays it). btrfly playback (CONNECT, then TLS with
 * btrfly's ECDSA P-256 leaf) against nginx's own TLS handshake with an ECDSA P-256 leaf, curl's
 * `time_appconnect` and throughput per body size. nginx is measured twice: with curl trusting
 * the bench CA alone, and with curl loading the same bundle `btrfly run` gives its child (the
 * system CAs plus one), since parsing that bundle is most of a new connection's time.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemCaPem } from '../engine/command/child-env';
import { makeSource } from './archive';
import { btrflyRunLine, curlResolve, fmtRatio, makeBenchCa, MiB, runBtrfly, startNginx } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

/** Body sizes: 64 KiB, 1 MiB and `--size-mib` MiB. */
const sizesFor = (opts: BenchOptions): number[] => [64 * 1024, MiB, Number(opts.flags.get('size-mib') ?? 16) * MiB];
/** Each fetch prints: seconds to the end of the TLS handshake, seconds in all. */
const WRITE_OUT = '%{time_appconnect} %{time_total}\\n';

/** A shell loop: `fetches` rounds of one curl process per body. */
function loop(urls: string[], fetches: number, curlArgs: string): string {
  return `for i in $(seq ${fetches}); do for u in ${urls.join(' ')}; do curl -sS --fail ${curlArgs} -o /dev/null -w '${WRITE_OUT}' "$u" || exit 1; done; done`;
}

/** Per body size: the medians of one loop's handshake (ms) and total (s) times. */
function medians(stdout: string, sizes: number): Array<{ handshakeMs: number; seconds: number }> {
  const rows = stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number));
  return Array.from({ length: sizes }, (_, k) => {
    const mine = rows.filter((_, i) => i % sizes === k);
    return { handshakeMs: spread(mine.map((r) => r[0] * 1000)).median, seconds: spread(mine.map((r) => r[1])).median };
  });
}

interface Side {
  handshakeMs: number[][];
  seconds: number[][];
}
const side = (sizes: number): Side => ({ handshakeMs: Array.from({ length: sizes }, () => []), seconds: Array.from({ length: sizes }, () => []) });
const add = (s: Side, m: Array<{ handshakeMs: number; seconds: number }>): void =>
  m.forEach((x, k) => (s.handshakeMs[k].push(x.handshakeMs), s.seconds[k].push(x.seconds)));

export const connectionsSection: BenchSection = {
  name: 'connections',
  async run(opts: BenchOptions): Promise<string> {
    const fetches = Number(opts.flags.get('fetches') ?? 20);
    const bodySizes = sizesFor(opts);
    const dir = opts.workDir;
    const www = join(dir, 'www');
    await mkdir(www, { recursive: true });
    const before = machineLine();
    const ca = await makeBenchCa(join(dir, 'ca'));
    for (const s of bodySizes) await makeSource(join(www, `body-${s}.bin`), 'random', s);
    const bundle = join(dir, 'ca-bundle.pem');
    await writeFile(bundle, `${systemCaPem()}\n${await readFile(ca.caPath, 'utf8')}`);
    const nginx = await startNginx(join(dir, 'nginx'), www, ca);
    const urls = bodySizes.map((s) => `${nginx.origin()}/body-${s}.bin`);
    const resolve = curlResolve(nginx.port).join(' ');
    const archive = join(dir, 'archive');
    const configDir = join(dir, 'config');
    const alone = side(bodySizes.length);
    const bundled = side(bodySizes.length);
    const btrfly = side(bodySizes.length);
    try {
      await runBtrfly({ mode: 'record', archive, tag: 'connections', configDir, ca, command: ['bash', '-c', loop(urls, 1, '')] });
      for (let i = 0; i < opts.runs; i++) {
        add(alone, medians((await timed('bash', ['-c', loop(urls, fetches, `--cacert ${ca.caPath} ${resolve}`)])).stdout, bodySizes.length));
        add(bundled, medians((await timed('bash', ['-c', loop(urls, fetches, `--cacert ${bundle} ${resolve}`)])).stdout, bodySizes.length));
        add(btrfly, medians((await runBtrfly({ mode: 'playback', archive, tag: 'connections', configDir, ca, command: ['bash', '-c', loop(urls, fetches, '')] })).stdout, bodySizes.length));
        log(`connections run ${i + 1}: handshake nginx ${alone.handshakeMs[0].at(-1)!.toFixed(1)} ms, nginx with the bundle ${bundled.handshakeMs[0].at(-1)!.toFixed(1)} ms, btrfly ${btrfly.handshakeMs[0].at(-1)!.toFixed(1)} ms`);
      }
    } finally {
      await nginx.stop();
      await rm(dir, { recursive: true, force: true });
    }
    const ms = (xs: number[]): string => fmtSpread(spread(xs), 1);
    const mibs = (k: number, xs: number[]): string => fmtSpread(spread(xs.map((s) => bodySizes[k] / MiB / s)), 0);
    // Per run: btrfly's handshake over nginx's (≤ 1.5 is the aim), and btrfly's speed over nginx's.
    const slower = (b: number[], n: number[]): string => fmtRatio(b.map((x, i) => x / n[i]));
    const faster = (b: number[], n: number[]): string => fmtRatio(b.map((x, i) => n[i] / x));
    const size = (s: number): string => (s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`);
    return joinLines([
      '## New connections',
      '',
      `One curl process per fetch (${fetches} fetches of each body per run, HTTPS, TLS 1.3, ECDSA P-256 leaves on both sides), everything on 127.0.0.1:`,
      'btrfly playback (curl sends CONNECT to the proxy, then TLS with btrfly\'s leaf) against nginx (one worker) serving the same files.',
      'curl\'s own `time_appconnect` (connect, CONNECT for btrfly, TLS handshake) and throughput (`time_total`).',
      'nginx twice: curl trusting the bench CA alone (`--cacert ca.pem`), and curl loading the bundle `btrfly run` gives its child',
      `(the system's ${systemCaPem().split('BEGIN CERTIFICATE').length - 1} CAs plus one: what curl loads for any HTTPS server with its default trust).`,
      `Median of ${opts.runs} runs (min–max) of each run's median; a ratio is per run.`,
      '',
      '| body | handshake ms: nginx, CA alone | nginx, bundle | btrfly | btrfly / nginx (bundle) | target | MiB/s: nginx, CA alone | nginx, bundle | btrfly | btrfly / nginx (bundle) | target |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...bodySizes.map(
        (s, k) =>
          `| ${size(s)} | ${ms(alone.handshakeMs[k])} | ${ms(bundled.handshakeMs[k])} | ${ms(btrfly.handshakeMs[k])} | ${slower(btrfly.handshakeMs[k], bundled.handshakeMs[k])} | ≤ 1.5× | ` +
          `${mibs(k, alone.seconds[k])} | ${mibs(k, bundled.seconds[k])} | ${mibs(k, btrfly.seconds[k])} | ${faster(btrfly.seconds[k], bundled.seconds[k])} | ${s >= MiB ? '≥ 0.5×' : '–'} |`,
      ),
      '',
      `All rows: \`npm run bench -- connections --fetches ${fetches} --size-mib ${bodySizes[2] / MiB} --runs ${opts.runs}\`; btrfly: \`${btrflyRunLine('playback', 'connections', ['bash', '-c', 'for ...; do curl -sS -o /dev/null URL; done'])}\`.`,
      '',
      'What limits it. Against nginx with the bench CA alone, btrfly\'s handshake looks 5–6 times slower, but that is curl,',
      'not the proxy: curl reads and parses the whole CA bundle it is given on every start (~25 ms here for ~150 CAs), and',
      '`btrfly run` gives it the system CAs plus btrfly\'s (SPEC section 6), as any curl with its default trust loads for a real',
      'server. With the same bundle on both sides, what btrfly adds is the CONNECT round trip and its own handshake; the',
      'certificate and its TLS context are made once per host name and cached (least recently used dropped), so a new',
      'connection signs nothing (docs/decisions.md, "New connections").',
      '',
      takenLine(before),
    ]);
  },
};
