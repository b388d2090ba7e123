/**
 * Bench section "npm": `npm ci` of a lockfile of about 400 packages, fresh npm cache each run,
 * against Verdaccio 6 in the same runs, alternating. The registry is the npm fixture of
 * test/fixtures/package-index.js (`createNpmApp`), serving packuments and `npm pack`-shaped
 * tarballs over HTTPS on 127.0.0.1, built here at bench time with sizes drawn like real ones.
 * Record: `btrfly run --record` against Verdaccio filling its storage from the fixture (its
 * uplink). Playback: `btrfly run --playback` against Verdaccio serving that storage with no
 * uplink. Verdaccio is installed outside the repository, into the user's cache, on first use.
 * Each run ends with npm ci from nginx serving the same tarballs as static files: the floor no
 * registry can beat, which shows how much of npm ci is npm's own work.
 */
import express from 'express';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fmtRatio, freePort, makeBenchCa, runBtrfly, startNginx, waitForPort, type BenchCa } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

/** The test fixture serving the packages (plain JS, loaded from the repository at run time). */
const PACKAGE_INDEX = join(__dirname, '..', '..', 'test', 'fixtures', 'package-index.js');

/** The registry's name in btrfly's runs (one of the bench names, pinned to 127.0.0.1). */
const REGISTRY_NAME = 'pkgs.test';

/** The npm fixture's package record (test/fixtures/package-index.js). */
interface NpmPackage {
  manifest: { name: string; version: string; dependencies: Record<string, string> };
  data: Buffer;
  filename: string;
  integrity: string;
}
interface PackageIndex {
  buildNpmPackage(o: { name: string; version: string; dependencies: Record<string, string>; files: Record<string, string> }): NpmPackage;
  createNpmApp(catalog: NpmPackage[]): express.Router;
}

/** A small seeded PRNG (mulberry32): the same sizes and graph on every run of the bench. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` packages: the first tenth are the project's direct dependencies, each later one a
 * dependency of an earlier one (three to a parent), so the tree is a few levels deep and every
 * package is reachable. Compressed sizes are log-normal around 12 KiB (1.5 KiB to 768 KiB, about
 * what a web project's lockfile holds), in one file per 3 KiB (1 to 40 files) of random base64
 * text, which gzip shrinks about as much as minified code.
 */
function makeCatalog(index: PackageIndex, count: number): { catalog: NpmPackage[]; direct: string[] } {
  const rand = prng(16);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const top = Math.max(1, Math.ceil(count / 10));
  const names = Array.from({ length: count }, (_, i) => `bench-npm-${String(i).padStart(3, '0')}`);
  const versions = names.map((_, i) => `1.${i % 7}.${i % 13}`);
  const deps: Array<Record<string, string>> = names.map(() => ({}));
  for (let i = top; i < count; i++) deps[Math.floor((i - top) / 3)][names[i]] = versions[i];
  const catalog = names.map((name, i) => {
    const size = Math.min(768 * 1024, Math.max(1536, Math.round(12 * 1024 * Math.exp(1.1 * gauss()))));
    const nFiles = Math.min(40, Math.max(1, Math.round(size / 3072)));
    const files: Record<string, string> = {};
    for (let f = 0; f < nFiles; f++) files[`lib/part-${f}.js`] = `module.exports = "${randomBytes(Math.round((size * 0.75) / nFiles)).toString('base64')}";\n`;
    return index.buildNpmPackage({ name, version: versions[i], dependencies: deps[i], files });
  });
  return { catalog, direct: names.slice(0, top) };
}

/** Writes package.json and a lockfile v3 whose tarballs are resolved at `registry`. */
async function writeProject(dir: string, catalog: NpmPackage[], direct: string[], registry: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const dependencies = Object.fromEntries(direct.map((n) => [n, catalog.find((p) => p.manifest.name === n)!.manifest.version]));
  const root = { name: 'npm-bench', version: '1.0.0', private: true, dependencies };
  const packages: Record<string, unknown> = { '': { name: root.name, version: root.version, dependencies } };
  for (const p of catalog) {
    const deps = p.manifest.dependencies;
    packages[`node_modules/${p.manifest.name}`] = {
      version: p.manifest.version,
      resolved: `${registry}/${p.manifest.name}/-/${p.filename}`,
      integrity: p.integrity,
      license: 'MIT',
      ...(Object.keys(deps).length ? { dependencies: deps } : {}),
    };
  }
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(root, null, 2)}\n`);
  await writeFile(join(dir, 'package-lock.json'), `${JSON.stringify({ name: root.name, version: root.version, lockfileVersion: 3, requires: true, packages }, null, 2)}\n`);
}

/**
 * `node npm-timed.js CPU_PID PROJECT NPM_CLI ARGS...`: runs npm in PROJECT with the environment it
 * was given, then prints its wall seconds and the CPU seconds (user + system, with reaped
 * children, from /proc) that process CPU_PID used meanwhile; `parent` is this script's parent
 * (btrfly). The `npm_*` variables `npm run bench` exports (they would point npm at this
 * repository) are removed before btrfly or the script starts, not here: under btrfly the script
 * runs with what `btrfly run` gives a command, `npm_config_*` included, as a user's npm would.
 */
const NPM_TIMED = `'use strict';
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const [pidArg, project, npmCli, ...args] = process.argv.slice(2);
const pid = pidArg === 'parent' ? process.ppid : Number(pidArg);
const cpu = () => readFileSync('/proc/' + pid + '/stat', 'utf8').split(') ')[1].split(' ').slice(11, 15).reduce((a, b) => a + Number(b), 0) / 100;
const c0 = cpu();
const t0 = process.hrtime.bigint();
const r = spawnSync(process.execPath, [npmCli, ...args], { cwd: project, stdio: ['ignore', 'inherit', 'inherit'] });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log('npm-timed seconds=' + seconds + ' cpu=' + (cpu() - c0));
process.exit(r.status === null ? 1 : r.status);
`;

interface NpmRun {
  seconds: number;
  cpu: number;
}

function parseNpmTimed(stdout: string): NpmRun {
  const m = /npm-timed seconds=([\d.]+) cpu=([\d.e-]+)/.exec(stdout);
  if (!m) throw new Error(`npm ci printed no timing: ${stdout.slice(-500)}`);
  return { seconds: Number(m[1]), cpu: Number(m[2]) };
}

/** npm's own script (`npm-cli.js`) behind the `npm` on PATH, run with this Node. */
async function npmCliScript(): Promise<string> {
  const bin = (await timed('sh', ['-c', 'command -v npm'])).stdout.trim();
  const real = realpathSync(bin);
  if (!real.endsWith('.js')) throw new Error(`npm at ${bin} is not npm-cli.js (${real})`);
  return real;
}

/** This process's environment without `npm run`'s `npm_*` variables. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Where Verdaccio is installed: the user's cache, never the repository. */
function verdaccioPrefix(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'btrfly-bench', 'verdaccio');
}

/**
 * Verdaccio 6's entry script, installed on first use with `npm install --prefix` from the
 * registry npm is configured with; resolves with the reason when it cannot be had.
 */
async function ensureVerdaccio(npmCli: string): Promise<{ bin: string; version: string } | { missing: string }> {
  const prefix = verdaccioPrefix();
  const pkg = join(prefix, 'node_modules', 'verdaccio', 'package.json');
  if (!existsSync(pkg)) {
    log(`npm: installing Verdaccio 6 into ${prefix}`);
    await mkdir(prefix, { recursive: true });
    try {
      await timed(process.execPath, [npmCli, 'install', '--prefix', prefix, 'verdaccio@6', '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=error'], cleanEnv());
    } catch (e) {
      return { missing: `npm install --prefix ${prefix} verdaccio@6 failed: ${(e as Error).message.split('\n').slice(-3).join(' ')}` };
    }
  }
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return { bin: join(prefix, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), version };
}

interface Verdaccio {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Verdaccio over HTTPS on 127.0.0.1 with `storage`, its uplink the fixture when `uplink` is given. */
async function startVerdaccio(bin: string, dir: string, storage: string, ca: BenchCa, uplink?: string): Promise<Verdaccio> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `storage: ${storage}`,
      `plugins: ${join(dir, 'plugins')}`,
      'web:',
      '  enable: false',
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: -1',
      ...(uplink ? ['uplinks:', '  fixture:', `    url: ${uplink}/`, '    timeout: 60s', '    max_fails: 100', '    cache: true'] : []),
      'packages:',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      ...(uplink ? ['    proxy: fixture'] : []),
      'https:',
      `  key: ${ca.keyPath}`,
      `  cert: ${ca.certPath}`,
      'log: { type: stdout, format: pretty, level: error }',
      'listen:',
      `  - https://127.0.0.1:${port}/`,
      '',
    ].join('\n'),
  );
  // The uplink's TLS is checked against the bench CA (NODE_EXTRA_CA_CERTS), as btrfly's is (--upstream-ca).
  const child: ChildProcess = spawn(process.execPath, [bin, '-c', config], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv({ NODE_EXTRA_CA_CERTS: ca.caPath }) });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPort(port, child, { name: 'verdaccio', attempts: 300, everyMs: 100, why: () => stderr });
  return {
    port,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The fixture registry over HTTPS on 127.0.0.1 (the bench leaf names pkgs.test and 127.0.0.1). */
async function startRegistry(index: PackageIndex, catalog: NpmPackage[], ca: BenchCa): Promise<{ port: number; server: Server }> {
  const app = express();
  app.use(index.createNpmApp(catalog));
  const server = createServer({ key: readFileSync(ca.keyPath), cert: readFileSync(ca.certPath), keepAliveTimeout: 60_000 }, app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

interface Side {
  ci: number[];
  cpu: number[];
  /** btrfly only: the whole `btrfly run`, start-up and seal included. */
  wall: number[];
}
const side = (): Side => ({ ci: [], cpu: [], wall: [] });

export const npmSection: BenchSection = {
  name: 'npm',
  async run(opts: BenchOptions): Promise<string> {
    const count = Number(opts.flags.get('packages') ?? 400);
    const dir = opts.workDir;
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const npmCli = await npmCliScript();
    const verdaccio = await ensureVerdaccio(npmCli);
    if ('missing' in verdaccio) {
      const line = `Verdaccio could not be installed, so this section measured nothing: ${verdaccio.missing}.`;
      if (process.env.CI) throw new Error(`npm section: ${line}`);
      return joinLines(['## npm install', '', line, '', takenLine(before)]);
    }
    const npmVersion = (await timed(process.execPath, [npmCli, '--version'], cleanEnv())).stdout.trim();
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain-JS test fixture found at run time
    const index = require(PACKAGE_INDEX) as PackageIndex;
    const t0 = Date.now();
    const { catalog, direct } = makeCatalog(index, count);
    const totalMiB = catalog.reduce((a, p) => a + p.data.length, 0) / 1024 ** 2;
    log(`npm: ${count} packages, ${totalMiB.toFixed(1)} MiB of tarballs, made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ca = await makeBenchCa(join(dir, 'ca'));
    const timedScript = join(dir, 'npm-timed.js');
    await writeFile(timedScript, NPM_TIMED);
    const registry = await startRegistry(index, catalog, ca);
    const configDir = join(dir, 'config');
    const npmArgs = (project: string, url: string): string[] => [
      'ci',
      '--registry',
      `${url}/`,
      '--cache',
      join(project, 'npm-cache'),
      '--userconfig',
      join(project, 'npmrc'),
      '--no-audit',
      '--no-fund',
      '--no-update-notifier',
      '--loglevel=warn',
    ];
    /** A fresh project (lockfile resolved at `url`, empty cache and user config), and npm's timed command line. */
    const project = async (name: string, url: string, cpuPid: string): Promise<string[]> => {
      const p = join(dir, name);
      await rm(p, { recursive: true, force: true });
      await writeProject(p, catalog, direct, url);
      await writeFile(join(p, 'npmrc'), '');
      return [process.execPath, timedScript, cpuPid, p, npmCli, ...npmArgs(p, url)];
    };
    const viaBtrfly = async (mode: 'record' | 'playback', archive: string): Promise<NpmRun & { wall: number; requests: number }> => {
      const url = `https://${REGISTRY_NAME}:${registry.port}`;
      const run = await runBtrfly({ mode, archive, tag: 'npm', configDir, ca, baseEnv: cleanEnv(), command: await project(`btrfly-${mode}`, url, 'parent') });
      const requests = Number(/: (\d+) requests/.exec(run.stderr)?.[1] ?? NaN);
      if (mode === 'playback' && !/ 0 misses/.test(run.stderr)) throw new Error(`btrfly playback missed: ${run.stderr.slice(-1000)}`);
      return { ...parseNpmTimed(run.stdout), wall: run.seconds, requests };
    };
    const viaVerdaccio = async (what: 'fill' | 'serve', storage: string): Promise<NpmRun> => {
      const v = await startVerdaccio(verdaccio.bin, join(dir, `verdaccio-${what}`), storage, ca, what === 'fill' ? `https://127.0.0.1:${registry.port}` : undefined);
      try {
        const [cmd, ...args] = await project(`verdaccio-${what}`, `https://127.0.0.1:${v.port}`, String(v.pid));
        return parseNpmTimed((await timed(cmd, args, cleanEnv({ NODE_EXTRA_CA_CERTS: ca.caPath }))).stdout);
      } finally {
        await v.stop();
      }
    };
    // The floor: nginx serving the same tarballs as static files, a server that costs npm next to nothing.
    const staticRoot = join(dir, 'static-files');
    for (const p of catalog) {
      await mkdir(join(staticRoot, p.manifest.name, '-'), { recursive: true });
      await writeFile(join(staticRoot, p.manifest.name, '-', p.filename), p.data);
    }
    const nginx = await startNginx(join(dir, 'nginx'), staticRoot, ca);
    const viaStatic = async (): Promise<NpmRun> => {
      const [cmd, ...args] = await project('via-nginx', `https://127.0.0.1:${nginx.port}`, String(process.pid));
      return parseNpmTimed((await timed(cmd, args, cleanEnv({ NODE_EXTRA_CA_CERTS: ca.caPath }))).stdout);
    };
    const record = { btrfly: side(), verdaccio: side() };
    const play = { btrfly: side(), verdaccio: side() };
    const floor: number[] = [];
    const requests: number[] = [];
    const push = (s: Side, r: NpmRun & { wall?: number }): void => {
      s.ci.push(r.seconds);
      s.cpu.push(r.cpu);
      if (r.wall !== undefined) s.wall.push(r.wall);
    };
    try {
      for (let i = 0; i < opts.runs; i++) {
        const archive = join(dir, `archive-${i}`);
        const storage = join(dir, `storage-${i}`);
        const br = await viaBtrfly('record', archive);
        const vf = await viaVerdaccio('fill', storage);
        const bp = await viaBtrfly('playback', archive);
        const vs = await viaVerdaccio('serve', storage);
        const ns = await viaStatic();
        floor.push(ns.seconds);
        push(record.btrfly, br);
        push(record.verdaccio, vf);
        push(play.btrfly, bp);
        push(play.verdaccio, vs);
        requests.push(br.requests, bp.requests);
        log(
          `npm run ${i + 1}: record btrfly ${br.seconds.toFixed(2)} s (run ${br.wall.toFixed(2)} s, ${br.requests} requests, ${br.cpu.toFixed(2)} CPU s), Verdaccio fill ${vf.seconds.toFixed(2)} s; ` +
            `playback btrfly ${bp.seconds.toFixed(2)} s (run ${bp.wall.toFixed(2)} s, ${bp.cpu.toFixed(2)} CPU s), Verdaccio ${vs.seconds.toFixed(2)} s, nginx static ${ns.seconds.toFixed(2)} s`,
        );
        await rm(archive, { recursive: true, force: true });
        await rm(storage, { recursive: true, force: true });
      }
    } finally {
      await nginx.stop();
      const closed = new Promise((r) => registry.server.close(r));
      registry.server.closeAllConnections();
      await closed;
      await rm(dir, { recursive: true, force: true });
    }
    const responses = spread(requests).median;
    const s = (xs: number[]): string => fmtSpread(spread(xs));
    const per1k = (xs: number[]): string => fmtSpread(spread(xs.map((c) => (c * 1000) / responses)));
    const row = (what: string, p: { btrfly: Side; verdaccio: Side }, ratios: number[], target: string): string =>
      `| ${what} | ${s(p.btrfly.ci)} | ${s(p.btrfly.wall)} | ${s(p.verdaccio.ci)} | ${fmtRatio(ratios)} | ${target} | ${per1k(p.btrfly.cpu)} | ${per1k(p.verdaccio.cpu)} |`;
    return joinLines([
      '## npm install',
      '',
      `\`npm ci\` (npm ${npmVersion}) of a lockfile of ${count} packages (${totalMiB.toFixed(1)} MiB of tarballs, log-normal sizes around 12 KiB,`,
      `1 to 40 files each, a tree a few levels deep), fresh project, npm cache and user config every run. The registry is the`,
      'npm fixture of test/fixtures/package-index.js over HTTPS on 127.0.0.1, made at bench time. Against',
      `Verdaccio ${verdaccio.version} (installed by the bench into the user's cache, HTTPS with the same key): **record** is`,
      '`btrfly run --record` against Verdaccio filling an empty storage from the fixture (its uplink); **playback** is',
      '`btrfly run --playback` of that recording against Verdaccio serving that storage with no uplink. Runs alternate',
      `(btrfly record, Verdaccio fill, btrfly playback, Verdaccio from storage, nginx); median of ${opts.runs} runs (min–max).`,
      "The npm ci seconds are npm's own, timed around it (btrfly's start-up and seal are in the `btrfly run` column only).",
      "Under btrfly, npm runs with what `btrfly run` gives a command (proxy variables, CA bundle, `npm_config_cafile`), as a user's npm would.",
      `CPU: user + system seconds (with reaped children, /proc/PID/stat) of the btrfly process, and of Verdaccio's, while npm ci ran,`,
      `per 1,000 responses (npm made ${responses} requests a run).`,
      '',
      '| workload | btrfly npm ci, s | btrfly run, s | Verdaccio npm ci, s | ratio | target | btrfly CPU s / 1,000 responses | Verdaccio CPU s / 1,000 responses |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      row('playback vs Verdaccio from storage (speed, Verdaccio s / btrfly s)', play, play.btrfly.ci.map((b, i) => play.verdaccio.ci[i] / b), '≥ 1.25×'),
      row('record vs Verdaccio filling its cache (time, btrfly s / Verdaccio s)', record, record.btrfly.ci.map((b, i) => b / record.verdaccio.ci[i]), '≤ 1.3×'),
      `| record, btrfly's whole run (start-up and seal) against the fill (time) | – | ${s(record.btrfly.wall)} | ${s(record.verdaccio.ci)} | ${fmtRatio(record.btrfly.wall.map((b, i) => b / record.verdaccio.ci[i]))} | – | – | – |`,
      '',
      `The floor: npm ci of the same lockfile from nginx serving the tarballs as static files (one worker, HTTPS) took ${s(floor)} s,`,
      `so Verdaccio s / nginx s, ${fmtRatio(play.verdaccio.ci.map((v, i) => v / floor[i]))}, is about the most any registry could reach here: npm's own work`,
      '(fetch stack, cache, unpacking thousands of files) is most of the time, whoever serves it (docs/decisions.md, "npm through btrfly").',
      '',
      `All rows: \`npm run bench -- npm --packages ${count} --runs ${opts.runs}\`. The btrfly commands are`,
      `\`btrfly run --record --tag npm --resolve ${REGISTRY_NAME}:127.0.0.1 --upstream-ca ca.pem -- npm ci --registry https://${REGISTRY_NAME}:PORT/ ...\``,
      'and `btrfly run --playback --tag npm -- npm ci ...` (the lockfile resolves every tarball at that registry).',
      '',
      takenLine(before),
    ]);
  },
};
