/**
 * Bench section "startup": wall time from starting `btrfly run --playback` to the first
 * request answered to its child (curl), for a recording of 10,000 entries and, as the
 * reference, one of a single entry. Recordings are made with `btrfly import` of a HAR.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BTRFLY_BIN } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

/** A HAR with `n` GET entries of small distinct text bodies under https://pkgs.test/. */
export function harWith(n: number): string {
  const entries = [];
  for (let i = 0; i < n; i++) {
    const text = `{"name":"pkg-${i}","version":"1.${i % 97}.0"}\n`;
    entries.push({
      startedDateTime: '2026-01-01T00:00:00.000Z',
      time: 0,
      request: { method: 'GET', url: `https://pkgs.test/simple/pkg-${i}/index.json`, httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
      response: {
        status: 200,
        statusText: 'OK',
        httpVersion: 'HTTP/1.1',
        headers: [{ name: 'Content-Type', value: 'application/json' }],
        cookies: [],
        content: { size: text.length, mimeType: 'application/json', text },
        redirectURL: '',
        headersSize: -1,
        bodySize: text.length,
      },
      cache: {},
      timings: { send: 0, wait: 0, receive: 0 },
    });
  }
  return JSON.stringify({ log: { version: '1.2', creator: { name: 'btrfly-bench', version: '1' }, entries } });
}

/** Seconds from spawning `btrfly run --playback` (with `runFlags`, such as `--isolate`) to curl, its child, having the first answer. */
export function timeToFirstAnswer(archive: string, tag: string, configDir: string, runFlags: string[] = []): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const url = 'https://pkgs.test/simple/pkg-0/index.json';
    // The child reports the moment curl returned by writing a line to a pipe the bench reads.
    const child = spawn(process.execPath, [BTRFLY_BIN, 'run', ...runFlags, '--archive', archive, '--playback', '--tag', tag, '--', 'sh', '-c', `curl -sS --fail -o /dev/null ${url} && echo answered`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BTRFLY_CONFIG_DIR: configDir },
    });
    let at: bigint | undefined;
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (at === undefined && s.includes('answered')) at = process.hrtime.bigint();
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('close', (code) => {
      if (code !== 0 || at === undefined) reject(new Error(`btrfly run --playback --tag ${tag} failed (${code}): ${err.trim()}`));
      else resolve(Number(at - t0) / 1e9);
    });
  });
}

export const startupSection: BenchSection = {
  name: 'startup',
  async run(opts: BenchOptions): Promise<string> {
    const entries = Number(opts.flags.get('entries') ?? 10000);
    const dir = opts.workDir;
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const archive = join(dir, 'archive');
    const configDir = join(dir, 'config');
    const env = { ...process.env, BTRFLY_CONFIG_DIR: configDir };
    const sizes = [1, entries];
    const importSeconds = new Map<number, number>();
    for (const n of sizes) {
      const har = join(dir, `${n}.har`);
      await writeFile(har, harWith(n));
      importSeconds.set(n, (await timed(process.execPath, [BTRFLY_BIN, 'import', har, '--archive', archive, '--tag', `startup-${n}`], env)).seconds);
    }
    const times = new Map<number, number[]>(sizes.map((n) => [n, []]));
    try {
      for (let i = 0; i < opts.runs; i++) {
        for (const n of sizes) times.get(n)!.push(await timeToFirstAnswer(archive, `startup-${n}`, configDir));
        log(`startup run ${i + 1}: ${sizes.map((n) => `${n} entries ${times.get(n)![i].toFixed(3)} s`).join(', ')}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const one = spread(times.get(1)!);
    return joinLines([
      '## Startup',
      '',
      'Wall time from starting `btrfly run --playback` to its child, curl, having the first answer (a hit), including',
      'Node\'s and oclif\'s start, opening the archive, loading the recording\'s manifest and the TLS handshake with a',
      `freshly minted leaf. Recordings made with \`btrfly import\` of a HAR. Median of ${opts.runs} runs (min–max).`,
      '',
      '| recording | seconds to first answer | over a 1-entry recording | import of the HAR, s | reproduce |',
      '| --- | --- | --- | --- | --- |',
      ...sizes.map((n) => {
        const s = spread(times.get(n)!);
        return `| ${n.toLocaleString('en')} entr${n === 1 ? 'y' : 'ies'} | ${fmtSpread(s, 3)} | +${(s.median - one.median).toFixed(3)} s | ${importSeconds.get(n)!.toFixed(1)} | \`btrfly run --playback --tag startup-${n} -- sh -c 'curl -sS -o /dev/null https://pkgs.test/simple/pkg-0/index.json'\` |`;
      }),
      '',
      `All rows: \`npm run bench -- startup --entries ${entries} --runs ${opts.runs}\`.`,
      '',
      takenLine(before),
    ]);
  },
};
