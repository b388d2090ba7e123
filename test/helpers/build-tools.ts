import { execFileSync } from 'node:child_process';
import { realpathSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';

/**
 * Real build tools (pip, npm) pointed at the package origins of
 * test/fixtures/package-index.js. A tool is described once here and driven the same way
 * by every test: write its project into a directory (as recorded, or with one dependency
 * bumped), run its build there as a shell command, hash what it produced.
 */
export interface BuildTool {
  name: 'pip' | 'npm';
  /** The origin kind that serves it (origin-server.js `--kind`). */
  kind: 'pypi' | 'npm';
  /** The origin's host name. */
  host: 'pypi.test' | 'registry.test';
  /** Why it cannot run on this machine, or undefined when it can. */
  missing(): string | undefined;
  /**
   * Writes a fresh project into `dir`: the recorded one, or (`diverged`) the same with one
   * dependency bumped to a version the recording never fetched.
   */
  writeProject(dir: string, diverged?: boolean): void;
  /**
   * The build, one shell command run in any working directory, its output under `dir`:
   * `base` is the origin's URL (`https://pypi.test:PORT`, or without a port in host mode).
   */
  command(dir: string, base: string): string;
  /** What a build produced in `dir`, for {@link snapshot}. */
  resultDir(dir: string): string;
  /** The URL only the diverged build asks for. */
  divergedUrl(base: string): string;
  /**
   * What a user sets so the tool trusts the system's CA store, which host mode edits:
   * pip from PyPI carries certifi's bundle and Node its own (docs/contract.md, "Trust and proxy settings", hands both
   * the CA bundle in command mode; in host mode the tool must be told where the system's is).
   */
  systemTrustEnv: Record<string, string>;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let python: string | null | undefined;

/** The real python3 (not a pyenv shim, which needs its own environment) with pip, or null. */
export function pythonWithPip(): string | null {
  if (python !== undefined) return python;
  try {
    const exe = execFileSync('python3', ['-c', 'import sys, pip; print(sys.executable)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    python = exe || null;
  } catch {
    python = null;
  }
  return python;
}

let npmCli: string | null | undefined;

/**
 * npm's own script (`npm-cli.js`), run with this process's Node (24 under `npm test`) so
 * that npm runs on the same Node wherever the test runs it, namespaces included.
 */
export function npmCliScript(): string | null {
  if (npmCli !== undefined) return npmCli;
  npmCli = null;
  if (onPath('npm')) {
    try {
      const bin = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
      const real = realpathSync(bin);
      if (real.endsWith('.js')) npmCli = real;
    } catch {
      /* no npm */
    }
  }
  return npmCli;
}

/** pip: `pip install --target` from the JSON simple API, `pip download` from an HTML-only one. */
export const pipTool: BuildTool = {
  name: 'pip',
  kind: 'pypi',
  host: 'pypi.test',
  missing: () => (pythonWithPip() ? undefined : 'python3 with pip'),
  writeProject(dir, diverged = false) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'requirements.txt'), `btrfly-demo-app==1.0.0\nbtrfly-demo-util==${diverged ? '1.1.0' : '1.0.0'}\n`);
  },
  command(dir, base) {
    // Fresh caches (--no-cache-dir) so every file comes over HTTP; no .pyc files, whose
    // embedded mtimes would differ between two installs of the same bytes.
    const pip = `${q(pythonWithPip()!)} -m pip --no-cache-dir --disable-pip-version-check --no-input`;
    const req = q(join(dir, 'requirements.txt'));
    return [
      `${pip} install --no-compile --target ${q(join(dir, 'out', 'site'))} --index-url ${base}/simple -r ${req}`,
      `${pip} download --dest ${q(join(dir, 'out', 'wheels'))} --index-url ${base}/legacy/simple -r ${req}`,
    ].join(' && ');
  },
  resultDir: (dir) => join(dir, 'out'),
  divergedUrl: (base) => `${base}/packages/btrfly_demo_util-1.1.0-py3-none-any.whl`,
  // Debian's own pip reads the system store already; pip from PyPI (pyenv, venv) uses certifi.
  systemTrustEnv: { PIP_CERT: '/etc/ssl/certs/ca-certificates.crt' },
};

/** npm: `npm install` of a project whose dependency chain is top → mid → leaf. */
export const npmTool: BuildTool = {
  name: 'npm',
  kind: 'npm',
  host: 'registry.test',
  missing: () => (npmCliScript() ? undefined : 'npm'),
  writeProject(dir, diverged = false) {
    const project = join(dir, 'out');
    mkdirSync(project, { recursive: true });
    const dependencies: Record<string, string> = { 'btrfly-demo-top': '1.0.0' };
    if (diverged) dependencies['btrfly-demo-leaf'] = '2.0.0';
    writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'btrfly-build', version: '1.0.0', private: true, dependencies }, null, 2)}\n`);
    // An empty user config and a fresh cache: nothing from the machine's npm setup leaks in.
    writeFileSync(join(dir, 'npmrc'), '');
  },
  command(dir, base) {
    const npm = `${q(process.execPath)} ${q(npmCliScript()!)}`;
    return `cd ${q(join(dir, 'out'))} && ${npm} install --registry ${base}/ --cache ${q(join(dir, 'npm-cache'))} --userconfig ${q(join(dir, 'npmrc'))} --no-audit --no-fund --no-update-notifier --loglevel=warn`;
  },
  resultDir: (dir) => join(dir, 'out'),
  divergedUrl: (base) => `${base}/btrfly-demo-leaf/-/btrfly-demo-leaf-2.0.0.tgz`,
  // Node (22.15+, 24) reads the system's CA store besides its own bundle when asked to.
  systemTrustEnv: { NODE_USE_SYSTEM_CA: '1' },
};

/** Every build tool, for tests that run each of them the same way. */
export const BUILD_TOOLS: readonly BuildTool[] = [pipTool, npmTool];

/**
 * The environment a build tool runs in under a test: this process's, without the npm
 * settings `npm test` exports (`npm_config_*`, which would point npm at the project's
 * own registry and cache), so that only what btrfly (or the test) sets applies.
 */
export function buildToolEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!/^npm_/i.test(k)) out[k] = v;
  return out;
}

/** The same npm settings as {@link buildToolEnv} leaves out, unset, for an `env` that {@link runCli} adds on top of this process's. */
export const WITHOUT_NPM_SETTINGS: NodeJS.ProcessEnv = Object.fromEntries(Object.keys(process.env).filter((k) => /^npm_/i.test(k)).map((k) => [k, undefined]));
