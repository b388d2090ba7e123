/**
 * Reviewing a dependency change as packages (issue 15): real npm installs from a registry on
 * `registry.test` (test/fixtures/package-index.js), recorded twice. Between the two, the
 * project bumps one package up, one down and adds one, and the registry publishes a version
 * nobody installs (so a packument changes without a dependency change). `btrfly diff` in
 * text, Markdown and JSON names exactly those three changes and counts the refreshed
 * metadata without listing it; `git diff` of `packages.lock` between the two recordings shows
 * the same three changes as lockfile lines; the tree's `.gitattributes` collapses
 * `volatile.json` and `bodies/` for git; the same install from `mirror.test` (same bytes,
 * another host) shows each package's URLs before and after; the second recording plays back.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express from 'express';
import { CLI_ENTRY, buildToolEnv, cliEnv, cliWorkDir, gitFsck, npmCliScript, npmTool, run, snapshot, testCa, tmpDir, type RunResult } from '../helpers';
import { describeWhen } from '../helpers/when';

interface NpmPackage {
  manifest: { name: string; version: string };
  data: Buffer;
  filename: string;
}
// Plain-JS fixture, typed loosely here.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain-JS fixture without a declaration file
const { buildNpmPackage, createNpmApp } = require('../fixtures/package-index') as {
  buildNpmPackage(p: { name: string; version: string; dependencies?: Record<string, string> }): NpmPackage;
  createNpmApp(catalog: NpmPackage[]): express.Router;
};

const describeNpm = describeWhen(npmTool.missing());
const HOST = 'registry.test';
/** The same registry under another name: a build that now downloads from elsewhere. */
const MIRROR = 'mirror.test';

/** What the registry has published at first; `gamma 1.1.0` comes later. */
const CATALOG = [
  ['alpha', '1.0.0'], ['alpha', '1.1.0'],
  ['beta', '1.9.0'], ['beta', '2.0.0'],
  ['gamma', '1.0.0'],
  ['delta', '1.0.0'],
].map(([name, version]) => buildNpmPackage({ name: `btrfly-pd-${name}`, version }));
const sha256 = (p: NpmPackage): string => createHash('sha256').update(p.data).digest('hex');
const pkg = (name: string, version: string): NpmPackage => CATALOG.find((p) => p.manifest.name === `btrfly-pd-${name}` && p.manifest.version === version)!;

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
}

describeNpm('a re-recorded npm install reviewed as packages', () => {
  const catalog = [...CATALOG];
  let server: https.Server;
  let base: string;
  let archive: string;
  let first: string;
  let second: string;
  const caPath = testCa().caPath;

  /** `btrfly ARGS` with the build tools' environment (no `npm_config_*` from `npm test`). */
  const btrfly = (args: readonly string[]): Promise<RunResult> =>
    run(process.execPath, [CLI_ENTRY, ...args], { cwd: cliWorkDir(), env: buildToolEnv(cliEnv()), timeoutMs: 120_000 });

  /** A fresh project with these dependencies; the shell command that installs it from `base`. */
  function project(deps: Record<string, string>, registry = base): { dir: string; command: string } {
    const dir = tmpDir();
    npmTool.writeProject(dir);
    const dependencies = Object.fromEntries(Object.entries(deps).map(([n, v]) => [`btrfly-pd-${n}`, v]));
    writeFileSync(join(dir, 'out', 'package.json'), `${JSON.stringify({ name: 'pd-build', version: '1.0.0', private: true, dependencies }, null, 2)}\n`);
    return { dir, command: npmTool.command(dir, registry) };
  }

  async function record(deps: Record<string, string>, tag = 'app', registry = base): Promise<string> {
    const { command } = project(deps, registry);
    const resolve = [HOST, MIRROR].flatMap((h) => ['--resolve', `${h}:127.0.0.1`]);
    const r = await btrfly(['run', '--record', `--tag=${tag}`, '--archive', archive, ...resolve, '--upstream-ca', caPath, '--', 'bash', '-c', command]);
    expect(r.stderr).toMatch(new RegExp(`recorded tag "${tag}"`));
    expect(r.code).toBe(0);
    return git(archive, 'rev-parse', `refs/heads/${tag}`).trim();
  }

  beforeAll(async () => {
    mkdirSync(cliWorkDir(), { recursive: true });
    const cert = testCa().issue([HOST, MIRROR]);
    const app = express();
    app.use(createNpmApp(catalog));
    server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://${HOST}:${(server.address() as AddressInfo).port}`;
    archive = join(tmpDir(), 'archive');

    first = await record({ alpha: '1.0.0', beta: '2.0.0', gamma: '1.0.0' });
    catalog.push(buildNpmPackage({ name: 'btrfly-pd-gamma', version: '1.1.0' }));
    second = await record({ alpha: '1.1.0', beta: '1.9.0', gamma: '1.0.0', delta: '1.0.0' });
    expect(npmCliScript()).toBeTruthy();
  }, 240_000);

  const stopRegistry = async (): Promise<void> => {
    if (!server?.listening) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  afterAll(stopRegistry);

  it('diff (text) names the bump up, the bump down and the new package, and counts the packuments refreshed and new', async () => {
    const r = await btrfly(['diff', `app@${first}`, 'app', '--archive', archive]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.slice(2)).toEqual([
      'upgraded   btrfly-pd-alpha 1.0.0 → 1.1.0 (npm)',
      'downgraded btrfly-pd-beta 2.0.0 → 1.9.0 (npm)',
      'added      btrfly-pd-delta 1.0.0 (npm)',
      // gamma's packument (a new version published) changed, delta's is new
      'metadata: 1 refreshed, 1 new, 0 gone',
      expect.stringMatching(/^packages: 1 upgraded, 1 downgraded, 1 added; metadata: 1 refreshed, 1 new, 0 gone; other URLs: 0 added, 0 removed, 0 changed; \d+ unchanged \(/),
    ]);
    const all = await btrfly(['diff', `app@${first}`, 'app', '--archive', archive, '--all']);
    expect(all.stdout.split('\n').filter((l) => l.startsWith('  '))).toEqual([
      expect.stringMatching(new RegExp(`^  \\+ GET ${base}/btrfly-pd-delta  200 `)),
      expect.stringMatching(new RegExp(`^  ~ GET ${base}/btrfly-pd-gamma  200 `)),
    ]);
  });

  it('diff --format markdown and --format json say the same', async () => {
    const md = await btrfly(['diff', `app@${first}`, 'app', '--archive', archive, '--format', 'markdown']);
    expect(md.stdout).toContain(
      [
        '| Package | Change | Version | Ecosystem |',
        '|---|---|---|---|',
        '| `btrfly-pd-alpha` | upgraded | 1.0.0 → 1.1.0 | npm |',
        '| `btrfly-pd-beta` | downgraded | 2.0.0 → 1.9.0 | npm |',
        '| `btrfly-pd-delta` | added | 1.0.0 | npm |',
        '',
        'Metadata: 1 refreshed, 1 new, 0 gone (`btrfly diff --all` lists them)',
      ].join('\n'),
    );
    expect(md.stdout).not.toContain('btrfly-pd-gamma');
    const j = JSON.parse((await btrfly(['diff', `app@${first}`, 'app', '--archive', archive, '--format', 'json'])).stdout);
    expect(j.packages).toEqual([
      { change: 'upgraded', ecosystem: 'npm', name: 'btrfly-pd-alpha', from: '1.0.0', to: '1.1.0' },
      { change: 'downgraded', ecosystem: 'npm', name: 'btrfly-pd-beta', from: '2.0.0', to: '1.9.0' },
      { change: 'added', ecosystem: 'npm', name: 'btrfly-pd-delta', to: '1.0.0' },
    ]);
    expect(j.metadata).toEqual({ refreshed: 1, new: 1, gone: 0 });
  });

  it('git diff of packages.lock between the two recordings reads like a lockfile change', () => {
    const patch = git(archive, 'diff', first, second, '--', 'packages.lock');
    const changed = patch.split('\n').filter((l) => /^[+-][^+-]/.test(l));
    const line = (p: NpmPackage) => `npm ${p.manifest.name} ${p.manifest.version} ${sha256(p)} ${p.filename}`;
    expect(changed.sort()).toEqual(
      [`+${line(pkg('alpha', '1.1.0'))}`, `+${line(pkg('beta', '1.9.0'))}`, `+${line(pkg('delta', '1.0.0'))}`, `-${line(pkg('alpha', '1.0.0'))}`, `-${line(pkg('beta', '2.0.0'))}`].sort(),
    );
    expect(git(archive, 'show', `${second}:packages.lock`)).toContain(line(pkg('gamma', '1.0.0')));
    expect(git(archive, 'show', `${second}:packages.lock`)).not.toContain(HOST);
  });

  it('the tree\'s .gitattributes collapses volatile.json and bodies/ for git and git hosts', async () => {
    const clone = join(tmpDir(), 'review');
    execFileSync('git', ['clone', '-q', '-b', 'app', archive, clone]);
    const body = git(clone, 'ls-files', 'bodies/').split('\n')[0];
    const attrs = git(clone, 'check-attr', 'diff', 'binary', 'linguist-generated', 'gitlab-generated', '--', 'volatile.json', body, 'packages.lock');
    expect(attrs.split('\n')).toEqual(expect.arrayContaining([
      'volatile.json: diff: unset',
      'volatile.json: linguist-generated: true',
      'volatile.json: gitlab-generated: set',
      `${body}: binary: set`,
      `${body}: linguist-generated: true`,
      'packages.lock: linguist-generated: false',
      'packages.lock: diff: unspecified',
    ]));
    // In that clone, git prints the tree's volatile.json as binary, packages.lock as text.
    const numstat = git(clone, 'diff', '--numstat', first, second).split('\n');
    expect(numstat).toContain('-\t-\tvolatile.json');
    expect(numstat).toContain('3\t2\tpackages.lock');
    await gitFsck(archive);
  });

  it('the same install from another host: diff names each package with both URLs, in text, Markdown and JSON', async () => {
    const deps = { alpha: '1.1.0', beta: '1.9.0', gamma: '1.0.0', delta: '1.0.0' };
    await record(deps, 'app-mirror', base.replace(HOST, MIRROR));
    const url = (h: string, p: NpmPackage): string => `${base.replace(HOST, h)}/${p.manifest.name}/-/${p.filename}`;
    const moved = [pkg('alpha', '1.1.0'), pkg('beta', '1.9.0'), pkg('delta', '1.0.0'), pkg('gamma', '1.0.0')];
    const text = await btrfly(['diff', 'app', 'app-mirror', '--archive', archive]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.slice(2, 7)).toEqual([
      ...moved.map((p) => `source     ${p.manifest.name} ${p.manifest.version} (npm): ${url(HOST, p)} → ${url(MIRROR, p)}`),
      'metadata: 0 refreshed, 4 new, 4 gone',
    ]);
    expect(lines[lines.length - 1]).toMatch(/^packages: 4 from another source; metadata: 0 refreshed, 4 new, 4 gone; /);
    const md = (await btrfly(['diff', 'app', 'app-mirror', '--archive', archive, '--format', 'markdown'])).stdout.split('\n');
    expect(md).toContain(`| \`btrfly-pd-alpha\` | source | 1.1.0 (other source) | npm |`);
    expect(md).toContain(`- \`btrfly-pd-alpha\` 1.1.0 (npm) from \`${url(HOST, pkg('alpha', '1.1.0'))}\` → \`${url(MIRROR, pkg('alpha', '1.1.0'))}\``);
    const j = JSON.parse((await btrfly(['diff', 'app', 'app-mirror', '--archive', archive, '--format', 'json'])).stdout);
    expect(j.packages[0]).toEqual({
      change: 'source', ecosystem: 'npm', name: 'btrfly-pd-alpha', from: '1.1.0', to: '1.1.0',
      urls: { from: [url(HOST, pkg('alpha', '1.1.0'))], to: [url(MIRROR, pkg('alpha', '1.1.0'))] },
    });
  }, 240_000);

  it('the re-recording plays back offline: the same install', async () => {
    const deps = { alpha: '1.1.0', beta: '1.9.0', gamma: '1.0.0', delta: '1.0.0' };
    const { dir, command } = project(deps);
    await stopRegistry();
    const r = await btrfly(['run', '--playback', '--tag=app', '--archive', archive, '--', 'bash', '-c', command]);
    expect(r.stderr).toMatch(/ 0 misses\n$/);
    expect(r.code).toBe(0);
    const tree = await snapshot(join(dir, 'out', 'node_modules'));
    expect(Object.keys(tree)).toEqual(expect.arrayContaining(Object.keys(deps).map((n) => `btrfly-pd-${n}/package.json`)));
  });
});
