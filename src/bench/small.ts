/**
 * Bench section "small": many small files shaped like a package index and its tarballs
 * (JSON documents and incompressible archives, 1–64 KiB), fetched over HTTPS by 8 keep-alive
 * clients (load-client.ts). btrfly playback and record against nginx serving them directly,
 * interleaved run by run.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BTRFLY_BIN, btrflyRunLine, fmtRatio, makeBenchCa, runBtrfly, shellLine, startNginx, type BenchCa, type BtrflyRun } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

export const LOAD_CLIENT = join(__dirname, 'load-client.js');
export const CONCURRENCY = 8;

/** What load-client.js prints. */
export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  bytes: number;
  /** Connections the clients opened (8 when keep-alive held). */
  connections: number;
}

export function parseLoad(stdout: string): LoadResult {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`the load client printed no result: ${stdout.slice(0, 500)}`);
  return JSON.parse(line) as LoadResult;
}

/** The files of the workload, relative paths; written once under `www`. */
export async function makeSmallFiles(www: string, count: number): Promise<string[]> {
  const paths: string[] = [];
  let x = 2463534242;
  const rnd = (): number => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const key = createHash('sha256').update('btrfly-bench-small').digest().subarray(0, 16);
  const indexes = Math.ceil(count / 5);
  for (let i = 0; i < count; i++) {
    const pkg = `pkg-${(i % indexes).toString(36)}`;
    // Sizes log-uniform in 1–64 KiB: most files small, a few near the top.
    const size = Math.round(1024 * 2 ** (rnd() * 6));
    let rel: string;
    let body: Buffer;
    if (i < indexes) {
      rel = `simple/${pkg}/index.json`;
      const versions: string[] = [];
      for (let v = 0; versions.join(',').length < size; v++) {
        const digest = createHash('sha256').update(`${pkg}@${v}`).digest('hex');
        versions.push(`"${v >> 4}.${v & 15}.0":{"tarball":"https://pkgs.test/tarballs/${pkg}/${pkg}-${v}.tgz","sha256":"${digest}"}`);
      }
      body = Buffer.from(`{"name":"${pkg}","versions":{${versions.join(',')}}}`).subarray(0, size);
    } else {
      rel = `tarballs/${pkg}/${pkg}-${i}.tgz`;
      const iv = Buffer.alloc(16);
      iv.writeUInt32BE(i);
      body = createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(size));
    }
    paths.push(rel);
    const file = join(www, rel);
    if (existsSync(file)) continue;
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, body);
  }
  return paths;
}

/** Writes the files and, once nginx's port is known, the URL list. */
export async function smallUrls(dir: string, paths: string[], origin: string): Promise<string> {
  const file = join(dir, 'urls.txt');
  await writeFile(file, paths.map((p) => `${origin}/${p}`).join('\n') + '\n');
  return file;
}

interface Side {
  btrfly: LoadResult[];
  reference: LoadResult[];
  rss: number[];
}

/** The small-file rows of a table: rps, p50, p99 of btrfly and the reference, and the rps ratio. */
export function loadRow(what: string, s: Side, ref: string, target: string, cmd: string, rss = true): string {
  const f = (xs: LoadResult[], k: keyof LoadResult, d = 0): string => fmtSpread(spread(xs.map((r) => r[k])), d);
  const ratios = s.btrfly.map((b, i) => b.rps / s.reference[i].rps);
  return `| ${what} | ${f(s.btrfly, 'rps')} | ${f(s.btrfly, 'p50ms', 1)} / ${f(s.btrfly, 'p99ms', 1)} | ${ref} | ${f(s.reference, 'rps')} | ${f(s.reference, 'p50ms', 1)} / ${f(s.reference, 'p99ms', 1)} | ${fmtRatio(ratios)} | ${target} |${rss ? ` ${Math.max(...s.rss)} |` : ''} ${cmd} |`;
}

export interface SmallSetup {
  ca: BenchCa;
  paths: string[];
  www: string;
}

export async function smallSetup(dir: string, count: number): Promise<SmallSetup> {
  const ca = await makeBenchCa(join(dir, 'ca'));
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true });
  return { ca, www, paths: await makeSmallFiles(www, count) };
}

export const smallSection: BenchSection = {
  name: 'small',
  async run(opts: BenchOptions): Promise<string> {
    const count = Number(opts.flags.get('files') ?? 5000);
    const dir = opts.workDir;
    const before = machineLine();
    const { ca, www, paths } = await smallSetup(dir, count);
    const nginx = await startNginx(join(dir, 'nginx'), www, ca);
    const urlsFile = await smallUrls(dir, paths, nginx.origin('pkgs.test'));
    const client = [process.execPath, LOAD_CLIENT, urlsFile, String(CONCURRENCY)];
    const directEnv = { ...process.env, NODE_EXTRA_CA_CERTS: ca.caPath, HTTPS_PROXY: '' };
    const configDir = join(dir, 'config');
    const rec: Side = { btrfly: [], reference: [], rss: [] };
    const play: Side = { btrfly: [], reference: [], rss: [] };
    let archive = '';
    const direct = async (): Promise<LoadResult> => parseLoad((await timed(client[0], client.slice(1), directEnv)).stdout);
    // One btrfly run of the load client, its figures added to `side` beside the reference's.
    const through = async (mode: 'record' | 'playback', side: Side, reference: LoadResult): Promise<BtrflyRun> => {
      const r = await runBtrfly({ mode, archive, tag: 'small', configDir, ca, command: client });
      side.reference.push(reference);
      side.btrfly.push(parseLoad(r.stdout));
      side.rss.push(r.peakRssMiB);
      return r;
    };
    try {
      for (let i = 0; i < opts.runs; i++) {
        const d = await direct();
        if (archive) await rm(archive, { recursive: true, force: true });
        archive = join(dir, `archive-${i}`);
        const r = await through('record', rec, d);
        log(`small record run ${i + 1}: direct ${d.rps.toFixed(0)} req/s, btrfly ${rec.btrfly[i].rps.toFixed(0)} req/s (run ${r.seconds.toFixed(1)} s, ${r.peakRssMiB} MiB)`);
      }
      for (let i = 0; i < opts.runs; i++) {
        const n = await direct();
        const p = await through('playback', play, n);
        log(`small playback run ${i + 1}: nginx ${n.rps.toFixed(0)} req/s (${n.connections} connections), btrfly ${play.btrfly[i].rps.toFixed(0)} req/s (${play.btrfly[i].connections} connections, ${p.peakRssMiB} MiB)`);
      }
    } finally {
      await nginx.stop();
      await rm(dir, { recursive: true, force: true });
    }
    const loadCmd = ['node', 'dist/bench/load-client.js', 'urls.txt', String(CONCURRENCY)];
    const cmd = (mode: 'record' | 'playback'): string => `\`${btrflyRunLine(mode, 'small', loadCmd)}\` / \`NODE_EXTRA_CA_CERTS=ca.pem ${shellLine(loadCmd)}\``;
    return joinLines([
      '## Small files',
      '',
      `${count} files of 1–64 KiB (log-uniform sizes): ${Math.ceil(count / 5)} JSON package indexes and ${count - Math.ceil(count / 5)} random-byte tarballs,`,
      `each fetched once over HTTPS by ${CONCURRENCY} concurrent clients with one keep-alive connection each (\`src/bench/load-client.ts\`,`,
      'Node `https` with a keep-alive agent; through the proxy with `https-proxy-agent`, one CONNECT tunnel a client).',
      'The reference is nginx (one worker) serving the same files directly, in the same run, just before btrfly.',
      `Median of ${opts.runs} runs (min–max); latency per request in ms; the ratio is btrfly's requests/s over nginx's, per run.`,
      '',
      '| btrfly | btrfly req/s | btrfly p50 / p99 ms | reference | reference req/s | reference p50 / p99 ms | ratio | target | btrfly peak RSS MiB | reproduce (btrfly / reference) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      loadRow('playback', play, 'nginx HTTPS', '≥ 0.5×', cmd('playback')),
      loadRow('record', rec, 'nginx HTTPS (direct)', '–', cmd('record')),
      '',
      `All rows: \`npm run bench -- small --files ${count} --runs ${opts.runs}\` (\`urls.txt\` lists \`https://pkgs.test:PORT/...\`).`,
      '',
      'What limits it. The load generator, btrfly (one Node process) and nginx share two cores, so every CPU-millisecond',
      'btrfly spends per request costs the clients too. A small body is read from the body cache (docs/decisions.md, "Body',
      'cache") with one synchronous read, its SHA-256 checked, and sent with one `res.end`; through `git cat-file --batch`',
      '(the body not cached) playback was 0.46×, the per-request round trip to git being its largest cost, and with an',
      'asynchronous `readFile` (four trips through the thread pool) 0.48×. What remains is TLS, Node\'s HTTP parser and',
      'the proxy\'s matching and headers on one thread: a Node HTTPS server answering the same files from memory reached',
      '0.74–0.88× nginx with this client (docs/notes/small-files.md).',
      'Record: each body\'s blob and tree go to one long-lived `git fast-import` from memory, a pack ended (checkpoint)',
      'per batch of up to 128 bodies or 100 ms; the journal lines of a batch go out once its pack is on disk, in one',
      'fsync\'d write; a small body\'s cache entry is one record appended to a segment file (no inode of its own); at',
      'most 256 exchanges answered but not yet stored.',
      'What is left per request is TLS twice (client and upstream), two HTTP exchanges and the proxy on one thread',
      '(docs/decisions.md, "Small-file record").',
      '',
      takenLine(before),
      `btrfly: \`node ${BTRFLY_BIN.replace(join(__dirname, '..', '..') + '/', '')}\`.`,
    ]);
  },
};
