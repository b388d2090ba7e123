/**
 * Bench section "isolate": what `btrfly run --isolate` costs against plain command mode.
 * Start-up: wall time from starting `btrfly run --playback` to its child, curl, having the first
 * answer, with and without --isolate (a 1-entry recording made with `btrfly import`). Throughput:
 * one large body of random bytes, recorded once from nginx, played back to curl plainly, under
 * --isolate through the proxy variables, and under --isolate with curl told of no proxy (the
 * namespace's transparent path). Runs alternate, so both sides see the same load.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeSource } from './archive';
import { BTRFLY_BIN, btrflyRunLine, curlCommand, fmtRatio, makeBenchCa, MiB, parseCurlTimes, runBtrfly, startNginx } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';
import { harWith, timeToFirstAnswer } from './startup';

/** The three ways a playback reaches curl. */
const PATHS = [
  { key: 'plain', what: 'command mode (proxy variables)', isolate: false, curlArgs: [] as string[] },
  { key: 'proxy', what: '--isolate, curl through the proxy variables', isolate: true, curlArgs: [] as string[] },
  { key: 'transparent', what: '--isolate, curl told of no proxy (`--noproxy \'*\'`)', isolate: true, curlArgs: ['--noproxy', '*'] },
] as const;

export const isolateSection: BenchSection = {
  name: 'isolate',
  async run(opts: BenchOptions): Promise<string> {
    const sizeMiB = Number(opts.flags.get('size-mib') ?? 256);
    const size = sizeMiB * MiB;
    const dir = opts.workDir;
    const www = join(dir, 'www');
    await mkdir(www, { recursive: true });
    const before = machineLine();
    const configDir = join(dir, 'config');
    const env = { ...process.env, BTRFLY_CONFIG_DIR: configDir };
    const archive = join(dir, 'archive');

    const har = join(dir, 'one.har');
    await writeFile(har, harWith(1));
    await timed(process.execPath, [BTRFLY_BIN, 'import', har, '--archive', archive, '--tag', 'startup-1'], env);
    const ca = await makeBenchCa(join(dir, 'ca'));
    await makeSource(join(www, 'body.bin'), 'random', size);
    const nginx = await startNginx(join(dir, 'nginx'), www, ca);
    const url = `${nginx.origin()}/body.bin`;
    const startPlain: number[] = [];
    const startIsolated: number[] = [];
    const seconds = new Map<string, number[]>(PATHS.map((p) => [p.key, []]));
    try {
      await runBtrfly({ mode: 'record', archive, tag: 'isolate', configDir, ca, command: curlCommand([url]) });
      await nginx.stop();
      for (let i = 0; i < opts.runs; i++) {
        startPlain.push(await timeToFirstAnswer(archive, 'startup-1', configDir));
        startIsolated.push(await timeToFirstAnswer(archive, 'startup-1', configDir, ['--isolate']));
        for (const p of PATHS) {
          const run = await runBtrfly({ mode: 'playback', archive, tag: 'isolate', configDir, ca, isolate: p.isolate, command: curlCommand([url], [...p.curlArgs]) });
          const [t] = parseCurlTimes(run.stdout);
          if (t === undefined) throw new Error(`btrfly playback (${p.key}) printed ${JSON.stringify(run.stdout)}; ${run.stderr}`);
          seconds.get(p.key)!.push(t);
        }
        log(
          `isolate run ${i + 1}: start-up ${startPlain[i].toFixed(3)} s plain, ${startIsolated[i].toFixed(3)} s isolated; ` +
            PATHS.map((p) => `${p.key} ${(sizeMiB / seconds.get(p.key)![i]).toFixed(0)} MiB/s`).join(', '),
        );
      }
    } finally {
      await nginx.stop();
      await rm(dir, { recursive: true, force: true });
    }
    const plain = spread(startPlain);
    const isolated = spread(startIsolated);
    const overhead = startIsolated.map((s, i) => (s - startPlain[i]) * 1000);
    const curlLine = `sh -c 'curl -sS -o /dev/null https://pkgs.test/simple/pkg-0/index.json'`;
    const bodyUrl = 'https://bench.test:PORT/body.bin';
    const throughputRow = (p: (typeof PATHS)[number]): string => {
      const t = seconds.get(p.key)!;
      const ratios = t.map((s, i) => seconds.get('plain')![i] / s);
      const cmd = btrflyRunLine('playback', 'isolate', ['curl', '-sS', ...p.curlArgs, '-o', '/dev/null', bodyUrl], p.isolate);
      return `| ${p.what} | ${fmtSpread(spread(t.map((s) => sizeMiB / s)), 0)} | ${p.key === 'plain' ? '–' : fmtRatio(ratios)} | ${p.key === 'plain' ? '–' : '≥ 0.9×'} | \`${cmd}\` |`;
    };
    return joinLines([
      '## Isolated runs',
      '',
      '`btrfly run --isolate` against plain command mode, alternating run by run. Start-up: wall time from starting',
      '`btrfly run --playback` to its child, curl, having the first answer from a 1-entry recording (as in the Startup',
      'section); under --isolate that includes `unshare`, the helper inside the namespace setting up its network',
      `(\`ip\`, \`nft\`) and handing its sockets over. Throughput: one ${sizeMiB} MiB body of random bytes over HTTPS, recorded`,
      `once from nginx, played back to curl (its own \`time_total\`, to /dev/null). Median of ${opts.runs} runs (min–max).`,
      '',
      '| start-up | seconds to first answer | added by --isolate, ms | target | reproduce |',
      '| --- | --- | --- | --- | --- |',
      `| command mode | ${fmtSpread(plain, 3)} | – | – | \`btrfly run --playback --tag startup-1 -- ${curlLine}\` |`,
      `| --isolate | ${fmtSpread(isolated, 3)} | ${fmtSpread(spread(overhead), 0)} | ≤ +300 ms | \`btrfly run --isolate --playback --tag startup-1 -- ${curlLine}\` |`,
      '',
      '| playback | MiB/s | over command mode | target | reproduce |',
      '| --- | --- | --- | --- | --- |',
      ...PATHS.map(throughputRow),
      '',
      `All rows: \`npm run bench -- isolate --size-mib ${sizeMiB} --runs ${opts.runs}\`. The bytes take the same way in`,
      'all three: the sockets the helper inside the namespace accepts on are btrfly\'s own (handed over when the namespace is',
      'made), so no process copies them in between; only where a connection came from differs.',
      '',
      takenLine(before),
    ]);
  },
};
